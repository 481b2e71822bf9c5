#!/usr/bin/env python3
"""Paired timing: runs a baseline command and a contender alternately, pair after pair.

On a shared or throttled machine the speed drifts between runs; timing the two commands back to
back and taking the ratio of each pair cancels most of that drift, and the median of the ratios is
the figure reported. Prints one JSON object: the medians of both commands, the median, minimum
and maximum of the per-pair ratios (contender / baseline), and every pair.

Usage: paired.py RUNS BASELINE CONTENDER   (commands run by /bin/sh, output discarded)
"""

import json
import statistics
import subprocess
import sys
import time


def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, shell=True, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main():
    runs, baseline, contender = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    # One warm-up pair: page cache, binaries, CPU frequency.
    timed(baseline)
    timed(contender)
    pairs = []
    for _ in range(runs):
        b = timed(baseline)
        c = timed(contender)
        pairs.append((b, c))
    ratios = [c / b for b, c in pairs]
    print(
        json.dumps(
            {
                "baseline": statistics.median(b for b, _ in pairs),
                "contender": statistics.median(c for _, c in pairs),
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "pairs": pairs,
            }
        )
    )


if __name__ == "__main__":
    main()
