"""Speed and memory figures, printed and written to ``outputs/bench/bench.json``: `make bench`.

Figures, not tests: nothing here is asserted. Every ratio is measured in the same run on
the same machine, so it holds wherever it runs (a GPU included):

1. preprocessing: images/s of earth_lib, with either engine, against the original
   per-image loop (skimage ``rgb2gray``, ``resize``, ``equalize_adapthist``,
   ``img_as_ubyte``, ``imsave``) on the same generated images (``preprocess_speedup``:
   the opencv engine; ``skimage_speedup``: the original's functions, in workers);
2. training: images/s of each preset, the FLOPs of one training image (forward + backward,
   counted by TensorFlow's profiler on the forward graph, times 3), and the FLOP/s reached
   as a fraction of a dense float32 matrix product timed here (``train_flop_fraction``:
   whole epochs, validation passes included; ``train_flop_fraction_steps``: the training
   steps alone; ``gemm_gflops``); ``cpu64`` and ``medium`` once more in
   ``mixed_bfloat16`` where the CPU has native bfloat16 (or on a GPU), against both products
   (``gemm_gflops_bfloat16``); and the milliseconds an augmented batch takes in ``tf.data``,
   earth_lib's one resampling against Keras' four layers in turn (``augmentation``);
3. the search: seconds per GPyOpt suggestion at 20, 60 and 150 evaluated points;
4. peak resident memory of a whole process running the search and the final training on
   generated data, each size in its own subprocess (``peak_rss_mb_<n>_<size>px``), also
   with ``train.micro_batch`` (``_micro<N>``: gradients averaged over passes of N images)
   and from disk (``_on_disk``: ``data.in_memory: false``).

Sizes are options (``--help``); the defaults took 15 and 19 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from earth_lib.io import atomic_write_json

#: The augmentation of the training rows: every transform on.
BENCH_AUGMENTATION = {"rotation": 90, "zoom": 0.1, "width_shift": 0.1, "height_shift": 0.1,
                      "horizontal_flip": 1, "vertical_flip": 1}


def original_loop(paths: list[Path], out: Path, size: int) -> None:
    """The original notebook's preprocessing: one image at a time, every step separate."""
    from skimage import color, exposure, io, transform, util

    out.mkdir(parents=True, exist_ok=True)
    for p in paths:
        img = io.imread(p)
        gray = color.rgb2gray(img)
        small = transform.resize(gray, (size, size))
        eq = exposure.equalize_adapthist(small)
        io.imsave(out / f"{p.parent.name}_{p.stem}.png", util.img_as_ubyte(eq),
                  check_contrast=False)


def _decoded_shape(path: Path) -> tuple[int, ...]:
    from earth_lib.images import read_image

    return read_image(path).shape


def decode_rate(paths: list[Path], workers: int) -> float:
    """Images/s of reading (decoding) the source files alone, in ``workers`` processes.

    The bound on any pipeline that reads these files on these cores: its speed-up over
    the original loop cannot exceed this rate's.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    t = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        for _ in pool.map(_decoded_shape, paths, chunksize=16):
            pass
    return len(paths) / (time.perf_counter() - t)


def bench_preprocessing(tmp: Path, n: int, src: int, out: int, workers: int) -> dict:
    """earth_lib's preprocessing, either engine, against the original loop, same images.

    Also the rate of decoding the source files alone (``decode_images_per_s``) and the
    speed-up it allows at most (``speedup_ceiling``): PNG decoding is a fixed cost.
    """
    from earth_lib.data.synthetic import generate_synthetic_dataset
    from earth_lib.params import validate
    from earth_lib.preprocessing import preprocess_folder

    generate_synthetic_dataset(tmp / "raw", math.ceil(n / 6), src, 6, seed=0, progress=False)
    paths = sorted((tmp / "raw").rglob("*.png"))
    t = time.perf_counter()
    original_loop(paths, tmp / "orig", out)
    orig = len(paths) / (time.perf_counter() - t)
    result = {"images": len(paths), "source_px": src, "output_px": out, "workers": workers,
              "original_images_per_s": round(orig, 2)}
    for engine in ("skimage", "opencv"):
        settings = validate({"preprocess": {"image_size": out, "grayscale": True,
                                            "engine": engine}})["preprocess"]
        t = time.perf_counter()
        preprocess_folder(tmp / "raw", tmp / engine, settings, workers=workers, progress=False)
        ours = len(paths) / (time.perf_counter() - t)
        print(f"preprocessing {len(paths)} images {src} -> {out} px, gray + CLAHE: original "
              f"loop {orig:.1f} images/s, earth_lib ({engine}, {workers} workers) "
              f"{ours:.1f} images/s: x{ours / orig:.2f}")
        result[f"{engine}_images_per_s"] = round(ours, 2)
        result[f"{engine}_speedup"] = round(ours / orig, 3)
    decode = decode_rate(paths, workers)
    result["decode_images_per_s"] = round(decode, 2)
    result["speedup_ceiling"] = round(decode / orig, 3)
    print(f"reading the {src}-px PNGs alone ({workers} workers): {decode:.1f} images/s, so no "
          f"pipeline that decodes them here can pass x{decode / orig:.2f} the original loop")
    result["preprocess_speedup"] = result["opencv_speedup"]
    return result


def gemm_gflops(n: int = 2048, repeats: int = 10, dtype: str = "float32",
                rounds: int = 5) -> float:
    """Dense matrix product throughput in ``dtype``, as TensorFlow reaches it on this machine.

    The best of ``rounds`` timings of ``repeats`` products: the machine's reach, not one
    timing's luck (a single timing read 151 GFLOP/s while training reached 156).
    """
    import tensorflow as tf

    a, b = (tf.cast(tf.random.normal([n, n]), dtype) for _ in range(2))
    tf.matmul(a, b).numpy()
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(repeats):
            c = tf.matmul(a, b)
        c.numpy()
        best = max(best, repeats * 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


FLOPS_JOB = """
import sys
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
from tensorflow.python.profiler import model_analyzer, option_builder
from earth_lib.nn.model import build_from_preset
size, preset = int(sys.argv[1]), sys.argv[2]
model = build_from_preset((size, size, 3), 10, preset, 3, 0.0)
spec = tf.TensorSpec([1, size, size, 3], tf.float32)
graph = convert_variables_to_constants_v2(
    tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)).graph
opts = option_builder.ProfileOptionBuilder.float_operation()
opts["output"] = "none"
print(model_analyzer.profile(graph, options=opts).total_float_ops)
"""


def forward_flops(preset: str, size: int) -> int:
    """FLOPs of one image through the network (TensorFlow's profiler on the inference graph).

    In a subprocess: the TF1 profiler and Keras training do not share a process well.
    """
    res = subprocess.run([sys.executable, "-c", FLOPS_JOB, str(size), preset],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"FLOP count of {preset} at {size} px failed:\n{res.stderr[-2000:]}")
    return int(res.stdout.strip().splitlines()[-1])


def epoch_timer():
    """A Keras callback timing each epoch, whole and without its validation pass.

    Made on call, so that importing this module does not import Keras (preprocessing's
    workers fork without TensorFlow).
    """
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch_seconds, self.train_seconds = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.train_end = time.perf_counter(), None

        def on_test_begin(self, logs=None):  # fit's validation pass starts
            if self.train_end is None:
                self.train_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            end = time.perf_counter()
            self.epoch_seconds.append(end - self.start)
            self.train_seconds.append((self.train_end or end) - self.start)

    return EpochTimer()


def bench_augmentation(batch: int = 32, size: int = 64, batches: int = 100) -> dict:
    """Milliseconds per augmented batch in ``tf.data``, earth_lib's way and Keras' layers'.

    earth_lib resamples once per image; Keras' four layers (flip, rotation, zoom, shift)
    each pass over the batch in turn. The values are the training rows'.
    """
    import keras
    import tensorflow as tf
    from keras import layers

    from earth_lib.nn.augmentation import augmentation_layers

    keras_layers = keras.Sequential([
        layers.RandomFlip("horizontal_and_vertical", seed=0),
        layers.RandomRotation(BENCH_AUGMENTATION["rotation"] / 360, fill_mode="reflect", seed=1),
        layers.RandomZoom(BENCH_AUGMENTATION["zoom"], fill_mode="reflect", seed=2),
        layers.RandomTranslation(BENCH_AUGMENTATION["height_shift"],
                                 BENCH_AUGMENTATION["width_shift"], fill_mode="reflect", seed=3)])
    x = np.random.default_rng(0).integers(0, 255, (batch, size, size, 3)).astype(np.float32)
    out = {"batch_size": batch, "image_px": size}
    for key, aug in (("affine_ms_per_batch", augmentation_layers(BENCH_AUGMENTATION)),
                     ("keras_layers_ms_per_batch", keras_layers)):
        ds = tf.data.Dataset.from_tensors(x).repeat().map(lambda b, a=aug: a(b, training=True))
        it = iter(ds.prefetch(2))
        for _ in range(5):  # trace and warm up
            next(it)
        t = time.perf_counter()
        for _ in range(batches):
            next(it)
        out[key] = round((time.perf_counter() - t) / batches * 1e3, 2)
    print(f"augmenting a batch of {batch} at {size} px: {out['affine_ms_per_batch']:.1f} ms "
          f"(Keras' four layers in turn: {out['keras_layers_ms_per_batch']:.1f} ms)")
    return out


def bench_training(runs: list[tuple[str, int, int, str]], gemm: float, batch: int = 32,
                   epochs: int = 3, gemm_bf16: float | None = None) -> dict:
    """Training images/s per preset, size and precision, and the FLOP/s against the GEMM's.

    Steady state: one run of ``epochs`` epochs, its first (building and tracing the
    graph) left out. ``train_flop_fraction`` counts whole epochs, each with its
    validation pass on 32 images; ``train_flop_fraction_steps`` the training steps alone
    (validation's FLOPs are not in the count, so its time should not be either). Rows in
    ``mixed_bfloat16`` (key suffix ``_bf16``) are measured against the float32 product as
    the others, and against the bfloat16 one (``train_flop_fraction_of_bf16_gemm``).
    """
    import keras

    from earth_lib.data import Split
    from earth_lib.nn.training import train_model
    from earth_lib.params import TrainSettings

    hp = {**BENCH_AUGMENTATION, "learning_rate": 1e-3, "batch_size": batch, "kernel_size": 3}
    rng = np.random.default_rng(0)
    out = {}
    for preset, size, n, precision in runs:
        x = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
        y = np.arange(n) % 10
        flops = 3 * forward_flops(preset, size)
        timer = epoch_timer()
        settings = TrainSettings.of(preset=preset, epochs=epochs, early_stopping=False,
                                    precision=precision)
        train_model(hp, Split(x, y), Split(x[:32], y[:32]), 10, (size, size, 3), settings,
                    seed=0, verbose=False, callbacks=[timer])
        keras.backend.clear_session()
        bf16 = precision == "mixed_bfloat16"
        images = n * (epochs - 1)
        rate = images / sum(timer.epoch_seconds[1:])
        steps_rate = images / sum(timer.train_seconds[1:])
        fraction, steps_fraction = (r * flops / (gemm * 1e9) for r in (rate, steps_rate))
        print(f"training {preset} at {size} px in {precision}, batch {min(batch, n)}: "
              f"{rate:.1f} images/s ({steps_rate:.1f} in the training steps alone), "
              f"{flops / 1e9:.3f} GFLOP per "
              f"training image, {rate * flops / 1e9:.1f} GFLOP/s = {100 * fraction:.1f} % of "
              f"the matrix product ({100 * steps_fraction:.1f} % in the steps alone)")
        row = out[f"{preset}_{size}px" + ("_bf16" if bf16 else "")] = {
            "images_per_s": round(rate, 2), "steps_images_per_s": round(steps_rate, 2),
            "batch_size": min(batch, n), "precision": precision,
            "gflop_per_training_image": round(flops / 1e9, 4),
            "train_flop_fraction": round(fraction, 4),
            "train_flop_fraction_steps": round(steps_fraction, 4)}
        if bf16 and gemm_bf16:
            row["train_flop_fraction_of_bf16_gemm"] = round(rate * flops / (gemm_bf16 * 1e9), 4)
            print(f"  = {100 * row['train_flop_fraction_of_bf16_gemm']:.1f} % of the bfloat16 "
                  "matrix product")
    return out


def bench_search(points: tuple[int, ...]) -> dict:
    """Seconds for one GPyOpt suggestion given n evaluated points in the method's 9-D space."""
    from earth_lib.params import DEFAULT_SPACE, validate_space
    from earth_lib.search import SearchSpace, suggest_next

    space = SearchSpace.from_dict(validate_space(DEFAULT_SPACE))
    rng = np.random.default_rng(0)
    out = {}
    for n in points:
        xs = space.latin_hypercube(n, seed=0)
        t = time.perf_counter()
        suggest_next(space, xs, list(rng.random(n)), seed=0)
        out[str(n)] = round(time.perf_counter() - t, 3)
        print(f"GPyOpt suggestion with {n} points: {out[str(n)]:.2f} s")
    return out


MEMORY_JOB = """
import json, sys
import numpy as np
from earth_lib import analysis
from earth_lib.data import chunks, split_arrays
from earth_lib.params import TrainSettings, search_plan, validate
from earth_lib.search import SearchSpace, run_search
from earth_lib.nn.training import make_objective, train_model
n, size, preset, history, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], \\
    sys.argv[5]
micro = int(sys.argv[6]) or None  # images per forward/backward pass (0: the whole batch)
search_images = int(sys.argv[7])  # the search trial's training images (PCA scores)
rng = np.random.default_rng(0)
shape = (n, size, size, 3)
if mode == "disk":  # written chunk by chunk, then read from disk as load_images(in_memory=False)
    out = np.lib.format.open_memmap(history + ".npy", "w+", np.uint8, shape)
    for part in chunks(n):
        out[part] = rng.integers(0, 255, (part.stop - part.start, *shape[1:]), dtype=np.uint8)
    out.flush()
    del out
    x = np.load(history + ".npy", mmap_mode="r")
else:
    x = rng.integers(0, 255, shape, dtype=np.uint8)
y = np.arange(n) % 10
p = validate({"search": {"steps": 1, "initial_points": 1, "iterations_per_step": 0, "epochs": 1,
                         "max_train_images": search_images}, "pca": {"max_images": 1000}})
k = int(0.7 * n), int(0.85 * n)
S = split_arrays(x, y, np.array(["train"] * k[0] + ["val"] * (k[1] - k[0]) + ["test"] * (n - k[1])))
pca = analysis.fit_pca(S["train"].x, variance=p["pca"]["variance"],
                       max_images=p["pca"]["max_images"])
s_train, s_val, decoder = analysis.search_inputs(S["train"], S["val"], pca,
                                                 max_images=search_images, use_pca=True, seed=0)
settings = TrainSettings.of(preset=preset, epochs=1, micro_batch=micro)
objective = make_objective(s_train, s_val, 10, (size, size, 3), settings.replace(role="trial"),
                           seed=0, decoder=decoder)
space = SearchSpace.from_dict(p["search"]["space"])
run_search(objective, space, history,
           search_plan(steps=1, initial_points=1, iterations_per_step=0, seed=0),
           log=lambda m: None)
train_model({**space.random_points(1, seed=0)[0], "batch_size": 64}, S["train"], S["val"], 10,
            (size, size, 3), settings, seed=0, verbose=False)
# VmHWM: this process's own peak (ru_maxrss would carry the parent's over the exec)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(json.dumps({"peak_rss_mb": int(hwm) / 1024}))
"""


def bench_memory(tmp: Path, sizes: list[tuple[int, int, int, str | None]], preset: str,
                 modes: list[str], search_images: int = 500) -> dict:
    """Peak RSS of a process running a PCA search trial and a final training epoch.

    The trial trains on at most ``search_images`` images (as ``search.max_train_images``);
    they are held as PCA scores, so their number barely moves the peak, only the time.

    ``memory``: the images held in memory (uint8); ``disk``: read from an on-disk array,
    as with ``data.in_memory: false`` (key suffix ``_on_disk``). A size's third number,
    when not 0, is ``train.micro_batch`` (key suffix ``_micro<N>``); its fourth, when
    given, its only mode (else each of ``modes``).
    """
    out = {}
    for n, size, micro, only in sizes:
        for mode in [only] if only else modes:
            t = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", MEMORY_JOB, str(n), str(size), preset,
                                  str(tmp / f"history_{n}_{size}_{micro}_{mode}.csv"), mode,
                                  str(micro), str(search_images)], capture_output=True,
                                 text=True)
            if res.returncode != 0:
                raise RuntimeError(f"memory job {n} x {size} px ({mode}) failed:\n"
                                   f"{res.stderr[-3000:]}")
            peak = json.loads(res.stdout.strip().splitlines()[-1])["peak_rss_mb"]
            passes = f", passes of at most {micro} images" if micro else ""
            print(f"peak memory, search + final training on {n} images of {size} px ({preset}, "
                  f"images in {mode}{passes}): {peak:.0f} MB ({time.perf_counter() - t:.0f} s)")
            key = (f"peak_rss_mb_{n}_{size}px{f'_micro{micro}' if micro else ''}"
                   f"{'_on_disk' if mode == 'disk' else ''}")
            out[key] = round(peak)
    return out


def parse_memory_sizes(spec: str) -> list[tuple[int, int, int, str | None]]:
    """``27000x64,2100x224/8:disk`` -> [(27000, 64, 0, None), (2100, 224, 8, 'disk')].

    Each run: images x px, then optionally /micro_batch and :memory or :disk (its only mode).
    """
    out = []
    for item in filter(None, spec.split(",")):
        item, _, mode = item.partition(":")
        if mode not in ("", "memory", "disk"):
            raise ValueError(f"memory run {item}:{mode}: the mode is memory or disk")
        size, _, micro = item.partition("/")
        n, px = size.split("x")
        out.append((int(n), int(px), int(micro or 0), mode or None))
    return out


WORKERS_JOB = """
import json, sys, time
import numpy as np
from earth_lib.data import Split
from earth_lib.distributed import trial_executor
from earth_lib.params import TrainSettings, search_plan, validate
from earth_lib.search import SearchSpace, run_search
from earth_lib.nn.training import make_objective
trials, workers, images, history = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), \\
    sys.argv[4]
rng = np.random.default_rng(0)
y = np.arange(images) % 10
x = (rng.integers(0, 120, (images, 32, 32, 3)) + 12 * y[:, None, None, None]).astype(np.uint8)
objective = make_objective(Split(x, y), Split(x[:200], y[:200]), 10, (32, 32, 3),
                           TrainSettings.of("trial", epochs=2, preset="small"), seed=0)
space = SearchSpace.from_dict(validate({})["search"]["space"])
t = time.perf_counter()
executor = trial_executor(workers=workers)
start = time.perf_counter() - t
run_search(objective, space, history,
           search_plan(steps=1, initial_points=trials, iterations_per_step=0, seed=0,
                       workers=workers), executor=executor, log=lambda m: None)
print(json.dumps({"seconds": time.perf_counter() - t, "ray_start_seconds": start}))
"""


def bench_workers(tmp: Path, trials: int, images: int, counts: list[int]) -> dict:
    """Wall time of the same ``trials`` search trials with 1 (in process) and N Ray workers."""
    out = {}
    for workers in counts:
        res = subprocess.run([sys.executable, "-c", WORKERS_JOB, str(trials), str(workers),
                              str(images), str(tmp / f"workers_{workers}.csv")],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"workers job ({workers}) failed:\n{res.stderr[-3000:]}")
        r = json.loads(res.stdout.strip().splitlines()[-1])
        out[str(workers)] = {k: round(v, 1) for k, v in r.items()}
        print(f"{trials} search trials with {workers} worker(s): {r['seconds']:.0f} s "
              f"(of which starting Ray {r['ray_start_seconds']:.0f} s)")
    return out


def main(argv: list[str] | None = None) -> None:
    """Run every benchmark; print the figures and write them to ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="outputs/bench/bench.json")
    ap.add_argument("--pre-images", type=int, default=2000)
    ap.add_argument("--pre-source-px", type=int, default=256)
    ap.add_argument("--pre-output-px", type=int, default=224)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--train-images", type=int, default=512)
    ap.add_argument("--paper-images", type=int, default=8)
    ap.add_argument("--train-batch", type=int, default=32, help="batch size of the training runs")
    ap.add_argument("--memory-preset", default="small")
    ap.add_argument("--memory", default="27000x64,2100x224,2100x224/8:disk",
                    help="images x px[/micro_batch][:memory|:disk] of the peak-memory runs "
                         "(comma-separated)")
    ap.add_argument("--memory-search-images", type=int, default=500,
                    help="training images of the search trial in the peak-memory runs")
    ap.add_argument("--memory-modes", default="memory",
                    help="where the images are in the peak-memory runs that name no mode: "
                         "memory, disk or both")
    ap.add_argument("--workers-trials", type=int, default=4,
                    help="search trials timed with 1 and 2 workers (Ray)")
    ap.add_argument("--workers-images", type=int, default=1000,
                    help="training images of each timed trial (32 px, 2 epochs)")
    ap.add_argument("--skip", default="",
                    help="comma-separated: preprocess,train,search,memory,workers")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    started = time.perf_counter()
    result: dict = {"machine": {"cpus": os.cpu_count()}}
    sections = result["section_seconds"] = {}  # where the bench's own time goes

    @contextlib.contextmanager
    def timed(name: str):
        t = time.perf_counter()
        yield
        sections[name] = round(time.perf_counter() - t)

    with tempfile.TemporaryDirectory() as tmp:
        if "memory" not in skip:  # Linux (reads /proc); each size in its own process
            with timed("memory"):
                result.update(bench_memory(Path(tmp), parse_memory_sizes(args.memory),
                                           args.memory_preset, args.memory_modes.split(","),
                                           args.memory_search_images))
        if "preprocess" not in skip:
            with timed("preprocess"):
                result["preprocessing"] = bench_preprocessing(
                    Path(tmp), args.pre_images, args.pre_source_px, args.pre_output_px,
                    args.workers)
                result["preprocess_speedup"] = result["preprocessing"]["preprocess_speedup"]
        import tensorflow as tf  # after preprocessing, whose workers fork without it

        from earth_lib.nn.training import cpu_has_native_bfloat16

        result["machine"]["gpus"] = [
            tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]
        if "train" not in skip:
            with timed("train"):
                result["gemm_gflops"] = round(gemm_gflops(), 2)
                print(f"float32 matrix product (2048^2): {result['gemm_gflops']:.1f} GFLOP/s")
                n = args.train_images
                runs = [("small", 64, n, "float32"), ("cpu64", 64, n, "float32"),
                        ("medium", 64, n, "float32"), ("paper", 224, args.paper_images, "float32")]
                gemm_bf16 = None
                if result["machine"]["gpus"] or cpu_has_native_bfloat16():
                    gemm_bf16 = result["gemm_gflops_bfloat16"] = round(
                        gemm_gflops(dtype="bfloat16"), 2)
                    print(f"bfloat16 matrix product (2048^2): {gemm_bf16:.1f} GFLOP/s")
                    runs += [("cpu64", 64, n, "mixed_bfloat16"),
                             ("medium", 64, n, "mixed_bfloat16")]
                else:
                    print("no bfloat16 rows: this CPU has no native bfloat16")
                result["augmentation"] = bench_augmentation(args.train_batch)
                result["training"] = bench_training(runs, result["gemm_gflops"], args.train_batch,
                                                    gemm_bf16=gemm_bf16)
                result["train_flop_fraction"] = {k: v["train_flop_fraction"]
                                                 for k, v in result["training"].items()}
        if "search" not in skip:
            with timed("search"):
                result["search_seconds_per_suggestion"] = bench_search((20, 60, 150))
        if "workers" not in skip:
            with timed("workers"):
                result["search_workers_seconds"] = bench_workers(
                    Path(tmp), args.workers_trials, args.workers_images, [1, 2])
    result["seconds"] = round(time.perf_counter() - started)
    result["peak_rss_mb_this_process"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    atomic_write_json(Path(args.out), result)
    print(f"written to {args.out} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
