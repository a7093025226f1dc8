"""The numpy + SciPy side of the benchmark (run with Debian's /usr/bin/python3).

  linkage FILE.npy REPEATS CUT         average linkage on a condensed distance vector
  dense-audit WEIGHTS.npz PROBES.npy THRESHOLD
                                       the audit of one dense ReLU layer, done the numpy way:
                                       forward, centred Gram, output and weight cosines,
                                       amplitudes, average-linkage clusters of weights and outputs

Prints one JSON object on stdout: the time of each step in seconds and what it found.
"""

import json
import resource
import sys
import time

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform


def first_appearance(labels):
    seen = {}
    return [seen.setdefault(int(v), len(seen)) for v in labels]


def cluster(cosine, threshold):
    distance = np.clip(1.0 - cosine, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    return fcluster(tree, t=1.0 - threshold, criterion="distance")


def cosine_from_gram(gram):
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    inverse = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    cosine = np.clip(gram * inverse[:, None] * inverse[None, :], -1.0, 1.0)
    np.fill_diagonal(cosine, 1.0)
    return cosine


def run_linkage(file, repeats, cut):
    condensed = np.load(file)
    times = []
    tree = None
    for _ in range(repeats):
        start = time.perf_counter()
        tree = linkage(condensed, method="average")
        times.append(time.perf_counter() - start)
    labels = fcluster(tree, t=cut, criterion="distance")
    return {"seconds": times, "best": min(times), "labels": first_appearance(labels)}


def cpu_seconds():
    # User + system time of every thread of this process (BLAS threads included).
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_dense_audit(weights_file, probes_file, threshold):
    steps = {}
    cpu_start = cpu_seconds()
    start = time.perf_counter()
    mark = start

    def step(name):
        nonlocal mark
        now = time.perf_counter()
        steps[name] = now - mark
        mark = now

    archive = np.load(weights_file)
    w, b, a = archive["w"], archive["b"], archive["a"]
    x = np.load(probes_file)
    step("load")
    h = np.maximum(x @ w.T + b, 0.0)
    step("forward")
    mean = h.mean(axis=0, dtype=np.float64)
    centred = h - mean.astype(np.float32)
    scatter = (centred.T @ centred).astype(np.float64)
    step("gram")
    second = scatter / h.shape[0] + np.outer(mean, mean)
    output_cosine = cosine_from_gram(second)
    step("output cosine")
    u = np.concatenate([w, b[:, None]], axis=1).astype(np.float32)
    weight_cosine = cosine_from_gram((u @ u.T).astype(np.float64))
    amplitude = np.linalg.norm(u, axis=1) * np.linalg.norm(a, axis=0)
    static = amplitude <= 0.01 * amplitude.max()
    step("weight cosine")
    active = np.flatnonzero(~static)
    weight_labels = cluster(weight_cosine[np.ix_(active, active)], threshold)
    step("weight clusters")
    output_labels = cluster(output_cosine[np.ix_(active, active)], threshold)
    step("output clusters")
    return {
        "seconds": time.perf_counter() - start,
        "cpuSeconds": cpu_seconds() - cpu_start,
        "steps": steps,
        "samples": int(x.shape[0]),
        "width": int(w.shape[0]),
        "staticNeurons": int(static.sum()),
        "weightClusters": int(weight_labels.max()),
        "outputClusters": int(output_labels.max()),
    }


def main(argv):
    if argv[1] == "linkage":
        result = run_linkage(argv[2], int(argv[3]), float(argv[4]))
    elif argv[1] == "dense-audit":
        result = run_dense_audit(argv[2], argv[3], float(argv[4]))
    else:
        raise SystemExit(f"unknown command {argv[1]!r}; expected linkage or dense-audit")
    result["numpy"] = np.__version__
    import scipy

    result["scipy"] = scipy.__version__
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv)
