"""Reading perf's table of samples into layers and pixring's functions (`make profile`)."""

from __future__ import annotations

import argparse

import pytest

from loadtest.cpu_layers import (
    CPYTHON,
    KERNEL,
    LIBC,
    MYPYC_RUNTIME,
    OTHER,
    PIXRING,
    Layers,
    ProfileError,
    Row,
    parse_report,
    pixring_function,
    summarize,
)
from loadtest.profile import render
from loadtest.summary import RunRecord

HOT = "_hot_path__mypyc.cpython-311-x86_64-linux-gnu.so"
PARSER = "parser.cpython-311-x86_64-linux-gnu.so"

# The shape `perf report --stdio --no-children --sort dso,sym -n -t '\t'` prints (perf 6.1):
# a commented header, then tab-separated columns that perf still pads with spaces.
REPORT = (
    "# To display the perf.data header info, please use --header/--header-only options.\n"
    "#\n"
    "# Samples: 1K of event 'cpu-clock:ppp'\n"
    "# Overhead\t     Samples\tShared Object                 \tSymbol                        \n"
    "#\n"
    f" 50.00% \t 500        \t[kernel.kallsyms]             \t[k] _raw_spin_unlock_irqrestore   \n"
    f" 20.00% \t 200        \tlibpython3.11.so.1.0          \t[.] _Py_dict_lookup               \n"
    f" 10.00% \t 100        \t{PARSER}                       \t[.] llhttp__internal__run         \n"
    f" 8.00%  \t 80         \t{HOT}                          \t[.] CPyDef_front___ClientConnection____start\n"
    f" 4.00%  \t 40         \t{HOT}                          \t[.] CPyPy_front___ClientConnection____start\n"
    f" 3.00%  \t 30         \t{HOT}                          \t[.] CPyBytes_Build                \n"
    f" 2.00%  \t 20         \tlibc.so.6                     \t[.] __memmove_avx_unaligned_erms  \n"
    f" 2.00%  \t 20         \t{HOT}                          \t[.] CPyDef_headers___response_head\n"
    f" 1.00%  \t 10         \torjson.cpython-311-x86_64-linux-gnu.so\t[.] orjson_dumps\n"
    "\n"
)
LAYERS = Layers(pixring=frozenset({HOT}), named={PARSER: "httptools"})


def test_rows_are_read_through_the_padding_and_comments_are_skipped():
    rows = parse_report(REPORT)
    assert len(rows) == 9
    assert rows[0] == Row(500, "[kernel.kallsyms]", "_raw_spin_unlock_irqrestore", kernel=True)
    assert rows[3] == Row(80, HOT, "CPyDef_front___ClientConnection____start", kernel=False)
    assert sum(row.samples for row in rows) == 1000


def test_a_line_that_is_not_a_row_is_an_error_naming_it():
    broken = REPORT.replace(" 20.00% \t 200", " 20.00% \t two hundred")
    with pytest.raises(ProfileError, match=r"line 7 .*two hundred"):
        parse_report(broken)
    with pytest.raises(ProfileError, match="line 1"):
        parse_report("perf: no samples found\n")


@pytest.mark.parametrize("row, layer", [
    (Row(1, "[kernel.kallsyms]", "tcp_ack", True), KERNEL),
    (Row(1, "libc.so.6", "syscall-wrapper-in-kernel", True), KERNEL),  # [k] wins over the object
    (Row(1, HOT, "CPyDef_x___f", False), PIXRING),
    (Row(1, "libpython3.11.so.1.0", "_PyObject_Malloc", False), CPYTHON),
    (Row(1, "libc.so.6", "malloc", False), LIBC),
    (Row(1, "[vdso]", "__vdso_clock_gettime", False), LIBC),
    (Row(1, PARSER, "llhttp__internal__run", False), "httptools"),
    (Row(1, "_xxhash.cpython-311-x86_64-linux-gnu.so", "XXH3", False), OTHER),
])
def test_each_shared_object_has_its_layer(row, layer):
    assert LAYERS.of(row) == layer


@pytest.mark.parametrize("symbol, name", [
    ("CPyDef_front___ClientConnection____start", "front.ClientConnection._start"),
    ("CPyPy_front___ClientConnection____start", "front.ClientConnection._start"),
    ("CPyDef_front____Attempt___on_response_head", "front._Attempt.on_response_head"),
    ("CPyDef_headers___response_head", "headers.response_head"),
    ("CPyBytes_Build", MYPYC_RUNTIME),
    ("CPyTagged_AsciiBytes", MYPYC_RUNTIME),
])
def test_mypyc_names_read_as_python_names(symbol, name):
    assert pixring_function(symbol) == name


def test_summary_orders_layers_and_merges_a_function_with_its_wrapper():
    profile = summarize(parse_report(REPORT), LAYERS, top=3)
    assert profile.samples == 1000
    assert profile.layers == [(KERNEL, 500), (CPYTHON, 200), (PIXRING, 170), ("httptools", 100), (LIBC, 20),
                              (OTHER, 10)]
    assert profile.pixring_functions == [("front.ClientConnection._start", 120), (MYPYC_RUNTIME, 30),
                                         ("headers.response_head", 20)]
    assert profile.symbols[0] == (KERNEL, "_raw_spin_unlock_irqrestore", 500)
    assert len(profile.symbols) == 3
    assert profile.share(170) == pytest.approx(0.17)


def test_no_samples_is_an_error_not_an_empty_table():
    with pytest.raises(ProfileError, match="no samples"):
        summarize(parse_report("# nothing recorded\n"), LAYERS)


def test_rendered_tables_turn_shares_into_microseconds_per_request():
    profile = summarize(parse_report(REPORT), LAYERS)
    # 20,000 requests on 0.6 s of CPU: 30 µs a request, a third of it system time
    run = RunRecord(config="pixring", connections=64, round=1, attempt=1, requests=20_000, wall_s=1.0, rps=20_000,
                    p50_ms=1.0, p90_ms=1.5, p99_ms=2.5, max_ms=7.0, failed=0, proxy_user_s=0.4,
                    proxy_system_s=0.2, other_pct=0.0, disturbed=False)
    args = argparse.Namespace(server="pixring", proxy_cpu=0, load_cpu=1, connections=64, seconds=1, frequency=999)
    text = render(profile, run, args)
    assert "20,000 req/s, 30.0 µs of pixring's CPU per request (33% of it system time by /proc)" in text
    kernel_line = next(line for line in text.splitlines() if line.strip().startswith(KERNEL))
    assert kernel_line.split()[-2:] == ["50.0%", "15.00"]  # half the samples: half of 30 µs
    start_line = next(line for line in text.splitlines() if "front.ClientConnection._start" in line)
    assert start_line.split()[-2:] == ["12.0%", "3.60"]


def test_profile_arguments_are_checked():
    from loadtest.profile import parse_args, runner_args

    args = parse_args(["--seconds", "3", "--connections", "8"])
    shared = runner_args(args)
    assert (shared.duration, shared.connections) == (3, [8])  # what loadtest.runner reads
    for bad in (["--seconds", "0"], ["--frequency", "0"], ["--proxy-cpu", "1", "--load-cpu", "1"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_the_skeleton_profile_has_no_table_of_pixring_functions():
    no_pixring = "".join(line + "\n" for line in REPORT.splitlines() if HOT not in line)
    profile = summarize(parse_report(no_pixring), LAYERS)
    run = RunRecord(config="skeleton", connections=64, round=1, attempt=1, requests=1000, wall_s=1.0, rps=1000,
                    p50_ms=1.0, p90_ms=1.5, p99_ms=2.5, max_ms=7.0, failed=0, proxy_user_s=0.01,
                    proxy_system_s=0.01, other_pct=0.0, disturbed=False)
    text = render(profile, run, argparse.Namespace(server="skeleton", proxy_cpu=0, load_cpu=1, connections=64,
                                                   seconds=1, frequency=999))
    assert text.startswith("skeleton on CPU 0") and "20.0 µs of skeleton's CPU" in text
    assert "compiled functions" not in text
