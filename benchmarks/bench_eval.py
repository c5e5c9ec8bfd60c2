"""Evaluation: the forward pass under no_grad (running statistics), tinyspike beside PyTorch eager.

    python benchmarks/bench_eval.py                      # MS-ResNet-20, B=100, T=6
    python benchmarks/bench_eval.py --model ms_resnet56 --wait-policy active

The same measurement as ``bench_train_step.py --eval`` (its docstring says how: alternated in
one process, median of the pairwise ratios; the OpenMP wait policy and OpenBLAS settings that
decide the figures), with the evaluation batch of 100 as default. Every option of
bench_train_step.py is accepted.
"""

from __future__ import annotations

import sys

from bench_train_step import main

if __name__ == "__main__":
    arguments = sys.argv[1:]
    if "--batch" not in arguments:
        arguments = ["--batch", "100", *arguments]
    main(["--eval", *arguments])
