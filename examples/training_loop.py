"""A training loop: NumPy SGD on a few model replicas, logged as numeric series.

Each replica fits a linear model to noisy data with minibatch SGD. Per-step losses are collected
in a NumPy buffer and logged once per epoch with one ``pa.metrics.series`` call per replica
(100 points per call, one JSONL line each); the learning rate goes out as a plain list and the
evaluation error per epoch on the ``epoch`` scale. The hyperparameters are logged once with
``pa.log_config``. Run it twice: the second run continues every curve where the first stopped,
because it seeds the steps from what the first one wrote (``pa.metrics.resume_steps``).

    python examples/training_loop.py [--epochs 5] [--replicas 4]
    .venv/bin/pontem-async tail telemetry --kind series
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import pontem_async as pa
from pontem_async.handlers import RotatingFileHandler, StreamHandler

CONFIG = {
    "model": {"kind": "linear", "features": 16},
    "optimizer": {"name": "sgd", "lr": 0.05, "decay": 0.9},
    "data": {"batch_size": 32, "noise": 0.1, "steps_per_epoch": 100},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=4)
    args = parser.parse_args()

    # the embedded default would also echo every series line on stderr: keep the console
    # for warnings, and the series in the file
    telemetry = pa.init(
        service_name="trainer",
        handlers=[
            StreamHandler(stream=sys.stderr, format="console", level="warn", kinds=["log"]),
            RotatingFileHandler(os.path.join("telemetry", "records.jsonl")),
        ],
    )
    if os.path.exists(os.path.join("telemetry", "records.jsonl")):
        resumed = pa.metrics.resume_steps("telemetry")
        print(f"resumed {resumed} series from ./telemetry")
    pa.log_config({**CONFIG, "replicas": args.replicas})

    features = CONFIG["model"]["features"]
    batch, noise = CONFIG["data"]["batch_size"], CONFIG["data"]["noise"]
    steps_per_epoch = CONFIG["data"]["steps_per_epoch"]
    rng = np.random.default_rng(0)
    target = rng.normal(size=features)
    weights = np.zeros((args.replicas, features))
    losses = np.empty(steps_per_epoch)  # reused every epoch: series() copies what it logs
    lr = CONFIG["optimizer"]["lr"]

    for _ in range(args.epochs):
        for replica in range(args.replicas):
            w = weights[replica]
            for step in range(steps_per_epoch):
                x = rng.normal(size=(batch, features))
                y = x @ target + noise * rng.normal(size=batch)
                error = x @ w - y
                losses[step] = float(np.mean(error**2))
                w -= lr * (2 / batch) * (x.T @ error)
            pa.metrics.series("train/loss", losses, labels={"replica": replica})
        pa.metrics.series("train/lr", [lr] * steps_per_epoch)
        distance = np.linalg.norm(weights - target, axis=1)
        pa.metrics.series("eval/distance", distance.mean(keepdims=True), scale="epoch")
        lr *= CONFIG["optimizer"]["decay"]

    last = pa.metrics.get_last_step("train/loss", {"replica": "0"})
    points = args.epochs * (args.replicas + 1) * steps_per_epoch + args.epochs
    print(f"logged {points} points; train/loss of replica 0 is at step {last}")
    report = telemetry.shutdown_sync(timeout=10)
    print(report)


if __name__ == "__main__":
    main()
