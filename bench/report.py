#!/usr/bin/env python3
"""bench/report.py FILE.jsonl [--svg OUT.svg] [--markdown]

Reads the JSON lines bench/bench.sh wrote (one per migration round) and prints,
per scenario (link rate, memory size, dirty rate): medians (min-max) of the
downtime, the total time and the gap the workload itself saw, per method; the
ratios of every cmt mode to the classic pipeline(s); the phases; the issue's
targets with the figures that decide them; and failed rounds.  With --svg it
also draws the medians as a bar chart (no plotting library needed).
Exit status 0, or 1 when a measured round failed."""
import json
import statistics
import sys

CLASSIC = ("classic", "classic-keep")
ORDER = ("cmt", "cmt-cold", "cmt-precopy", "cmt-postcopy", "cmt-hybrid", "cmt-auto", "classic", "classic-keep")
RATE_BPS = {"k": 1e3, "m": 1e6, "g": 1e9}


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def cell(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    return "%.0f (%.0f-%.0f)" % (statistics.median(vals), min(vals), max(vals))


def size_name(s):
    return "%d GiB" % (s // 1024) if s % 1024 == 0 else "%d MiB" % s


def rate_name(r):
    return r or "unthrottled"


def rate_bytes_per_s(r):
    if not r:
        return None
    num, unit = r[:-3].rstrip("kmg"), r[:-3][len(r[:-3].rstrip("kmg")):]
    return float(num) * RATE_BPS.get(unit, 1) / 8


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    rows = [json.loads(l) for l in open(args[0]) if l.strip()]
    svg = args[args.index("--svg") + 1] if "--svg" in args else None
    md = "--markdown" in args
    meas = [r for r in rows if not r.get("warmup")]
    for r in meas:
        r.setdefault("dirty_mib_s", 0)
    scen = sorted({(r.get("rate") or "", r["size_mib"], r["dirty_mib_s"]) for r in meas},
                  key=lambda k: (k[0] != "", k[0], k[1], k[2]))
    methods = [m for m in ORDER if any(r["method"] == m for r in meas)]

    def sel(sc, m):
        return [r for r in meas if (r.get("rate") or "", r["size_mib"], r["dirty_mib_s"]) == sc and r["method"] == m]

    def ok(sc, m):
        return [r for r in sel(sc, m) if r["result"] == "ok"]

    print()
    print("Migration benchmark: cmt modes vs the classic pipeline (runc checkpoint + tar|ssh + runc restore)")
    print("medians over ok rounds (min-max), milliseconds; gap = longest pause the workload itself saw")
    sep = " | " if md else " "
    hdr = ["link", "size", "dirty MiB/s", "method", "ok/n", "downtime ms", "total ms", "gap ms", "MiB sent"]
    widths = [12, 8, 11, 13, 6, 22, 22, 22, 9]
    line = lambda cols: (("| " + sep.join(cols) + " |") if md else sep.join(c.ljust(w) for c, w in zip(cols, widths)))
    print(line(hdr))
    print("| " + " | ".join("---" for _ in hdr) + " |" if md else "-" * (sum(widths) + len(widths)))
    for sc in scen:
        for m in methods:
            rs = sel(sc, m)
            if not rs:
                continue
            good = ok(sc, m)
            sent = med([(r.get("bytes") or {}).get("bytes_sent") for r in good])
            print(line([rate_name(sc[0]), size_name(sc[1]), str(sc[2]), m, "%d/%d" % (len(good), len(rs)),
                        cell([r["downtime_ms"] for r in good]), cell([r["total_ms"] for r in good]),
                        cell([r["maxgap_ms"] for r in good]), "%.0f" % (sent / 2**20) if sent else "-"]))

    cmts = [m for m in methods if m.startswith("cmt")]
    bases = [m for m in methods if m in CLASSIC]
    if cmts and bases:
        print()
        print("ratios cmt/baseline of the medians: downtime, total, gap")
        for sc in scen:
            for m in cmts:
                for b in bases:
                    if not ok(sc, m) or not ok(sc, b):
                        continue
                    parts = []
                    for k in ("downtime_ms", "total_ms", "maxgap_ms"):
                        a, c = med([r[k] for r in ok(sc, m)]), med([r[k] for r in ok(sc, b)])
                        parts.append("%.2f" % (a / c) if a is not None and c else "-")
                    print("  %-12s %-8s dirty %-3d %-13s / %-13s %s" % (rate_name(sc[0]), size_name(sc[1]), sc[2], m, b,
                                                                       "  ".join(parts)))

    print()
    print("phases (medians, ms)")
    for sc in scen:
        for m in methods:
            good = ok(sc, m)
            if not good:
                continue
            keys = list((good[0].get("phases") or {}).keys())
            parts = []
            for k in keys:
                v = med([(r.get("phases") or {}).get(k) for r in good])
                parts.append("%s %s" % (k.replace("_ms", ""), "-" if v is None else "%.0f" % v))
            rounds = med([r.get("rounds") for r in good])
            if rounds is not None:
                parts.append("rounds %.0f" % rounds)
            reasons = sorted({r.get("stop_reason") for r in good if r.get("stop_reason")})
            if reasons:
                parts.append("stopped by " + "/".join(reasons))
            print("  %-12s %-8s dirty %-3d %-13s %s" % (rate_name(sc[0]), size_name(sc[1]), sc[2], m, ", ".join(parts)))
            # cmt's timeline (JSON steps_ms): where the total goes, step by step
            steps = [k for r in good for k in ((r.get("raw") or {}).get("steps_ms") or {})]
            steps = list(dict.fromkeys(steps))
            if steps:
                print("  %-12s %-8s %-9s %-13s steps: %s" % ("", "", "", "", ", ".join(
                    "%s %.0f" % (k, med([((r.get("raw") or {}).get("steps_ms") or {}).get(k) for r in good]) or 0)
                    for k in steps)))

    # the targets, with the figures that decide them
    print()
    print("targets")
    for sc in scen:
        rate, size, dirty = sc
        for m in ("cmt-postcopy", "cmt-hybrid"):
            g = med([r["maxgap_ms"] for r in ok(sc, m)])
            if g is not None and size >= 1024:
                print("  %s %s %s dirty %d: gap seen by the workload %.0f ms (target <= 200): %s"
                      % (m, rate_name(rate), size_name(size), dirty, g, "met" if g <= 200 else "NOT met"))
                # how much of the downtime CRIU's own work is (its logs), round by round
                own = [((r.get("phases") or {}).get("criu_dump_ms") or 0) + ((r.get("phases") or {}).get("criu_restore_ms")
                                                                             or 0) for r in ok(sc, m)]
                dts = [r["downtime_ms"] for r in ok(sc, m)]
                if all(own) and dts:
                    print("    of its downtime %.0f ms, CRIU's own dump and restore (their logs) are %.0f ms (%.0f-%.0f); "
                          "the rest, %.0f ms, is cmt's and runc's" % (med(dts), med(own), min(own), max(own),
                                                                      med([d - o for d, o in zip(dts, own)])))
        if rate and ok(sc, "cmt-precopy") and ok(sc, "classic"):
            d = med([r["downtime_ms"] for r in ok(sc, "cmt-precopy")])
            c = med([r["downtime_ms"] for r in ok(sc, "classic")])
            print("  cmt-precopy %s %s dirty %d: downtime %.0f vs classic %.0f ms = %.2f (target <= 0.5): %s"
                  % (rate, size_name(size), dirty, d, c, d / c, "met" if d / c <= 0.5 else "NOT met"))
        # the total against the line rate needs no baseline
        if rate and ok(sc, "cmt-precopy"):
            bps = rate_bytes_per_s(rate)
            tot = med([r["total_ms"] for r in ok(sc, "cmt-precopy")])
            sent = med([(r.get("bytes") or {}).get("bytes_sent") for r in ok(sc, "cmt-precopy")])
            if bps and sent and tot:
                ideal = sent / bps * 1000
                print("  cmt-precopy %s %s dirty %d: total %.0f ms vs %.0f ms for the %.0f MiB sent at line rate = %.2f"
                      " (target <= 1.5): %s" % (rate, size_name(size), dirty, tot, ideal, sent / 2**20, tot / ideal,
                                                 "met" if tot / ideal <= 1.5 else "NOT met"))
    bad_mem = [r for r in meas if r.get("verify_fail") not in (0, None)]
    print("  memory intact after every migration: %s" % ("yes (verify_fail=0 in every verified round)" if not bad_mem
                                                           else "NO: " + ", ".join(r["id"] for r in bad_mem)))

    la = [r["load"]["busy_cores_before"] for r in meas if "load" in r]
    if la:
        print()
        print("other load: %.2f cores busy just before a move (median; max %.2f)%s"
              % (statistics.median(la), max(la), "  <- others are using this machine: expect noise" if max(la) > 0.3 else ""))
    bad = [r for r in meas if r["result"] != "ok"]
    if bad:
        print()
        print("FAILED rounds:")
        for r in bad:
            print("  %s: %s: %s" % (r["id"], r.get("failed_step"), (r.get("error") or "")[:400].replace("\n", " | ")))
    if svg:
        draw(svg, scen, methods, ok)
        print()
        print("plot: %s" % svg)
    print()
    print("raw results: %s" % args[0])
    return 1 if bad else 0


def draw(path, scen, methods, ok):
    """Grouped bars: per scenario, the median downtime of each method (filled)
    and the gap the workload saw (outline), on a log scale."""
    import math
    colors = {"cmt": "#1f77b4", "cmt-cold": "#1f77b4", "cmt-precopy": "#2ca02c", "cmt-postcopy": "#9467bd",
              "cmt-hybrid": "#17becf", "cmt-auto": "#8c564b", "classic": "#d62728", "classic-keep": "#ff7f0e"}
    groups = [(sc, [(m, med([r["downtime_ms"] for r in ok(sc, m)]), med([r["maxgap_ms"] for r in ok(sc, m)]))
                    for m in methods]) for sc in scen]
    vals = [v for _, g in groups for _, d, gp in g for v in (d, gp) if v]
    if not vals:
        return
    lo, hi = 10.0, max(vals) * 1.5
    bw, gap, left, top, h = 14, 26, 70, 40, 300
    width = left + sum(len([x for x in g if x[1]]) * bw + gap for _, g in groups) + 180
    y = lambda v: top + h - (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * h
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">'
           % (width, top + h + 110),
           '<text x="%d" y="20" font-size="14">Downtime (bars) and gap seen by the workload (dots), ms, log scale</text>'
           % left]
    for t in (10, 30, 100, 300, 1000, 3000, 10000, 30000):
        if t <= hi:
            out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" '
                       'text-anchor="end">%d</text>' % (left, width - 180, y(t), y(t), left - 4, y(t) + 4, t))
    x = left + 10
    for sc, g in groups:
        x0 = x
        for m, d, gp in g:
            if not d:
                continue
            out.append('<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s %.0f ms</title></rect>'
                       % (x, y(d), bw - 2, top + h - y(d), colors.get(m, "#777"), m, d))
            if gp:
                out.append('<circle cx="%.1f" cy="%.1f" r="3" fill="black"><title>gap %.0f ms</title></circle>'
                           % (x + bw / 2 - 1, y(gp), gp))
            x += bw
        label = "%s %s d%d" % (rate_name(sc[0]).replace("unthrottled", "unthr."), size_name(sc[1]), sc[2])
        out.append('<text transform="translate(%.1f,%d) rotate(40)">%s</text>' % ((x0 + x) / 2 - 10, top + h + 12,
                                                                                   label))
        x += gap
    for i, m in enumerate(methods):
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>'
                   % (width - 170, top + i * 18, colors.get(m, "#777"), width - 152, top + i * 18 + 10, m))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    sys.exit(main())
