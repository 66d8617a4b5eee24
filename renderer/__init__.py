"""pixring's reference renderer: an aiohttp + Pillow image server for imgix-style URLs.

The balancer treats it as an opaque HTTP backend; it exists so the whole tier runs end to
end on one machine. It must never import ``balancer``; parameters come from
``pixring.schema``, the schema the balancer's normalizer reads too.

    geometry     pure box arithmetic of the fit modes
    params       query -> RenderSpec (through pixring.schema)
    negotiate    auto=format: Accept -> output format
    pipeline     bytes in, bytes out: Pillow decode, transform, encode (runs in workers)
    orientation  Exif orientation, orient, flip, rot
    adjust       bri, con, exp, gam, sat, monochrome, sharp, blur
    stylize      hue, vib, shad, high, invert, nr/nrs, usm/usmrad, sepia, duotone, px, htn
    origin       the origin interface, the local-directory origin and its path fence
    http_origin  the HTTP origin (timeouts, size limit, same-host redirects)
    cache        byte-bounded LRU of finished renders (memory tier)
    diskcache    byte-bounded directory of finished renders (disk tier)
    singleflight one render for concurrent identical requests
    workers      the process pool with a bounded queue and a render time budget
    app          the aiohttp app: make_app(settings)
    cli          `pixring renderer`
    samples      deterministic sample images for `make run` and the tests
"""
