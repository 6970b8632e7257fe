"""One study trial, side by side: ours, the physical limit, and pnpxai 0.1.4's trial.

A trial is what one configuration costs inside a study: a new explainer from the study's base
(``set_kwargs``), its attribution of the batch, and AbPC with 10 steps. Measured on a torchvision
ResNet-50 (random weights) and 4 of the resnet50 preset's sample photographs (224x224):

- **ours**: ``LRPEpsilonGammaBox`` / ``LRPEpsilonPlus`` ``.attribute(x, y)`` + ``metrics.AbPC(n_steps=10)``;
- **limit**: zennit's own ``EpsilonGammaBox`` / ``EpsilonPlus`` composite with the ``ResNetCanonizer``
  through ``zennit.attribution.Gradient`` (one attribution of the batch), plus the 20 plain forward
  passes of the 4 images that AbPC with 10 steps needs (2 curves x 10 points, as pnpxai computes them);
- **pnpxai**: pnpxai 0.1.4's ``LRPEpsilonGammaBox`` / ``LRPEpsilonPlus`` (``set_kwargs`` of a base
  explainer, as its optimizer's ``suggest`` does), its post-processor and its ``AbPC(n_steps=10)``. It
  runs in a separate virtual environment (created with ``--system-site-packages`` under
  ``~/.cache/lrp-tuner-bench``, ``pip install pnpxai==0.1.4`` on first use) in a worker subprocess that
  stays alive, so its repetitions interleave with ours; skipped with a message when it cannot be installed.

Every method runs once as a warm-up, then ``--repeats`` times, interleaved (the order rotates each
repetition); the table gives medians, the min-max of the repetitions and the ratios.

    python benchmarks/trial.py                   # 5 repetitions
    python benchmarks/trial.py --repeats 3 --no-pnpxai
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

PNPXAI_VERSION = "0.1.4"
N_STEPS = 10
VARIANTS = ("LRPEpsilonGammaBox", "LRPEpsilonPlus")
PARAMS = {"LRPEpsilonGammaBox": {"epsilon": 1e-6, "gamma": 0.25}, "LRPEpsilonPlus": {"epsilon": 1e-6}}
STABILIZER = 1e-6
CACHE = Path(os.environ.get("LRP_TUNER_BENCH_CACHE", Path.home() / ".cache" / "lrp-tuner-bench"))


# -- pnpxai: installation in its own virtual environment, and the worker that runs in it --------------------
def ensure_pnpxai(venv: Path) -> tuple[Path | None, str]:
    """The venv's python with pnpxai installed and our torch, or (None, why not)."""
    python = venv / "bin" / "python"
    ours = torch.__version__
    check = [str(python), "-c", "import torch, pnpxai; print(torch.__version__)"]
    if python.exists():
        done = subprocess.run(check, capture_output=True, text=True)
        if done.returncode == 0:
            theirs = done.stdout.strip().splitlines()[-1]
            return (python, "") if theirs == ours else (None, f"the venv {venv} has torch {theirs}, not {ours}")
    else:
        print(f"creating {venv} (--system-site-packages) ...", file=sys.stderr)
        venv.parent.mkdir(parents=True, exist_ok=True)
        made = subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], capture_output=True, text=True
        )
        if made.returncode != 0:
            return None, f"cannot create the venv {venv}: {_last_line(made.stderr)}"
    spec = f"pnpxai=={PNPXAI_VERSION}"
    # first a dry run: the system's pip constraints stay in force; refuse if it would bring another torch
    report = subprocess.run(
        [str(python), "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-", spec],
        capture_output=True,
        text=True,
    )
    if report.returncode != 0:
        return None, f"pip cannot resolve {spec}: {_last_line(report.stderr)}"
    try:
        planned = {
            item["metadata"]["name"].lower(): item["metadata"]["version"]
            for item in json.loads(report.stdout)["install"]
        }
    except (ValueError, KeyError):
        planned = {}
    if "torch" in planned:
        return None, f"its dependencies would install torch {planned['torch']} over ours ({ours})"
    print(f"pip install {spec} into {venv} ({len(planned)} packages) ...", file=sys.stderr)
    log = venv.parent / "pnpxai-pip-install.log"
    with open(log, "w") as handle:
        done = subprocess.run([str(python), "-m", "pip", "install", spec], stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        return None, f"pip install {spec} failed (exit {done.returncode}); see {log}"
    done = subprocess.run(check, capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"pnpxai does not import after installing: {_last_line(done.stderr)}"
    theirs = done.stdout.strip().splitlines()[-1]
    return (python, "") if theirs == ours else (None, f"the venv ended up with torch {theirs}, not {ours}")


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def pnpxai_worker(data_file: str) -> None:
    """Runs in pnpxai's venv: loads the same model and batch, then times one trial per request on stdin."""
    import warnings

    warnings.filterwarnings("ignore")
    import torchvision
    from pnpxai.evaluator.metrics import AbPC
    from pnpxai.explainers import LRPEpsilonGammaBox, LRPEpsilonPlus
    from pnpxai.explainers.utils.postprocess import PostProcessor

    data = torch.load(data_file, weights_only=True)
    torch.set_num_threads(data["threads"])
    model = torchvision.models.resnet50(weights=None)
    model.load_state_dict(data["state_dict"])
    model.eval()
    x, y = data["x"], data["y"]
    bases = {
        "LRPEpsilonGammaBox": LRPEpsilonGammaBox(model, low=data["low"], high=data["high"], stabilizer=STABILIZER),
        "LRPEpsilonPlus": LRPEpsilonPlus(model, stabilizer=STABILIZER),
    }
    postprocessor = PostProcessor.from_name("sumpos", "identity", channel_dim=1)
    print(json.dumps({"ready": True, "versions": _pnpxai_version()}), flush=True)
    for line in sys.stdin:
        variant = line.strip()
        if not variant:
            continue
        start = time.perf_counter()
        explainer = bases[variant].set_kwargs(**PARAMS[variant])  # as pnpxai's suggest() does per trial
        attributions = explainer.attribute(x, y)
        pooled = postprocessor(attributions)
        middle = time.perf_counter()
        metric = AbPC(model, n_steps=N_STEPS).set_explainer(explainer)
        value = metric.evaluate(x, y, pooled).mean().item()
        end = time.perf_counter()
        print(
            json.dumps({"total": end - start, "attribute": middle - start, "metric": end - middle, "value": value}),
            flush=True,
        )


def _pnpxai_version() -> str:
    from importlib.metadata import version

    return version("pnpxai")


class PnpxaiWorker:
    """The worker subprocess, driven one trial at a time so its repetitions interleave with ours."""

    def __init__(self, python: Path, data_file: str):
        self.process = subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "--pnpxai-worker", data_file],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(ROOT),
        )
        hello = self._read()
        self.version = hello["versions"]

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the pnpxai worker exited (code {self.process.wait()})")
        return json.loads(line)

    def trial(self, variant: str) -> dict:
        self.process.stdin.write(variant + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


# -- ours and the limit --------------------------------------------------------------------------------------
def main() -> None:
    from _timing import machine, median, spread, table
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonGammaBox, EpsilonPlus
    from zennit.torchvision import ResNetCanonizer

    import explainers
    import studies
    from metrics import AbPC
    from metrics.perturbation import DEFAULT_BATCH_SIZE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per method (median)")
    parser.add_argument("--n-images", type=int, default=4, help="images in the batch")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"our AbPC's batch_size (default: the package's, {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for every method (default 1: on a shared 2-core machine two threads "
        "wait on each other whenever another job holds a core)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda (pnpxai is timed on CPU only)")
    parser.add_argument("--no-pnpxai", action="store_true", help="skip pnpxai")
    parser.add_argument(
        "--venv",
        type=Path,
        default=CACHE / f"pnpxai-{PNPXAI_VERSION}-venv",
        help="pnpxai's virtual environment (created when missing)",
    )
    parser.add_argument("--pnpxai-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pnpxai_worker:
        return pnpxai_worker(args.pnpxai_worker)

    torch.set_num_threads(args.threads)
    preset = studies.get_preset("resnet50")
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = preset.load_model("none", device=device)
    x = preset.load_data(n_samples=args.n_images)[0].to(device)
    low, high = preset.low.to(device), preset.high.to(device)
    with torch.no_grad():
        y = model(x).argmax(1)
    n_classes = 1000
    print(
        f"ResNet-50 (random weights), {len(x)} images {tuple(x.shape[2:])} on {device}, AbPC {N_STEPS} steps, "
        f"our batch_size={args.batch_size}, repeats={args.repeats}"
    )
    print(f"machine: {machine()}")

    worker, skipped = None, "--no-pnpxai" if args.no_pnpxai else f"this script times it on CPU only, not {device}"
    if not args.no_pnpxai and device.type == "cpu":
        python, skipped = ensure_pnpxai(args.venv)
        if python is not None:
            data_file = tempfile.NamedTemporaryFile(suffix=".pt", delete=False).name
            torch.save(
                {
                    "state_dict": model.state_dict(),
                    "x": x,
                    "y": y,
                    "low": preset.low,
                    "high": preset.high,
                    "threads": torch.get_num_threads(),
                },
                data_file,
            )
            try:
                worker = PnpxaiWorker(python, data_file)
            except (RuntimeError, ValueError, OSError) as error:
                skipped = f"its worker did not start: {error}"
            finally:
                os.unlink(data_file)
    if worker is None:
        print(f"pnpxai skipped: {skipped}")

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    bases = {
        "LRPEpsilonGammaBox": explainers.LRPEpsilonGammaBox(model, low=low, high=high, stabilizer=STABILIZER),
        "LRPEpsilonPlus": explainers.LRPEpsilonPlus(model, stabilizer=STABILIZER),
    }

    def ours(variant: str) -> dict:
        sync()
        start = time.perf_counter()
        explainer = bases[variant].set_kwargs(**PARAMS[variant])  # as the tuner's SearchSpace.suggest does
        attributions = explainer.attribute(x, y)
        sync()
        middle = time.perf_counter()
        value = AbPC(model, n_steps=N_STEPS, batch_size=args.batch_size).evaluate(x, y, attributions).mean().item()
        end = time.perf_counter()
        return {
            "total": end - start,
            "attribute": middle - start,
            "metric": end - middle,
            "value": value,
            "relevance": attributions,
        }

    def limit(variant: str) -> dict:
        sync()
        start = time.perf_counter()
        p = PARAMS[variant]
        composite = (
            EpsilonGammaBox(
                low=low,
                high=high,
                epsilon=p["epsilon"],
                gamma=p["gamma"],
                stabilizer=STABILIZER,
                canonizers=[ResNetCanonizer()],
            )
            if variant == "LRPEpsilonGammaBox"
            else EpsilonPlus(epsilon=p["epsilon"], stabilizer=STABILIZER, canonizers=[ResNetCanonizer()])
        )
        with Gradient(model=model, composite=composite) as attributor:
            _, relevance = attributor(x, torch.nn.functional.one_hot(y, n_classes).float())
        sync()
        middle = time.perf_counter()
        with torch.inference_mode():
            for _ in range(2 * N_STEPS):
                torch.softmax(model(x), -1).gather(1, y[:, None])
        sync()
        end = time.perf_counter()
        return {"total": end - start, "attribute": middle - start, "metric": end - middle, "relevance": relevance}

    methods = {}
    for variant in VARIANTS:
        methods[("ours", variant)] = lambda v=variant: ours(v)
        methods[("limit", variant)] = lambda v=variant: limit(v)
        if worker is not None:
            methods[("pnpxai", variant)] = lambda v=variant: worker.trial(v)

    try:
        results = {key: [] for key in methods}
        warm = {key: fn() for key, fn in methods.items()}  # warm-up (and the checks below)
        for variant in VARIANTS:
            difference = (warm[("ours", variant)]["relevance"] - warm[("limit", variant)]["relevance"]).abs().max()
            print(f"{variant}: max |ours - zennit| relevance = {difference:.2e}")
        keys = list(methods)
        for repeat in range(args.repeats):
            shift = repeat % len(keys)
            for key in keys[shift:] + keys[:shift]:  # interleaved, order rotated
                results[key].append(methods[key]())
            print(f"repetition {repeat + 1}/{args.repeats} done", file=sys.stderr)
    finally:
        if worker is not None:
            worker.close()

    def med(key, part="total"):
        return median(r[part] for r in results[key]) if key in results else float("nan")

    rows = []
    for variant in VARIANTS:
        lim = med(("limit", variant))
        for who in ("ours", "limit", "pnpxai"):
            key = (who, variant)
            if key not in results:
                continue
            total = med(key)
            vs_pnpxai = f"{med(('pnpxai', variant)) / total:.2f}" if ("pnpxai", variant) in results else "-"
            rows.append(
                [
                    variant,
                    who,
                    f"{total:.3f}",
                    spread([r["total"] for r in results[key]]),
                    f"{med(key, 'attribute'):.3f}",
                    f"{med(key, 'metric'):.3f}",
                    f"{total / lim:.2f}",
                    vs_pnpxai,
                ]
            )
    print()
    print(
        table(["variant", "trial", "median s", "min-max s", "attribute s", "AbPC s", "x limit", "pnpxai / this"], rows)
    )
    print(
        "\n'limit' = zennit's own composite via zennit.attribution.Gradient + 20 plain forward passes of the "
        "batch; 'attribute s' includes building the explainer; pnpxai's includes its post-processing."
    )
    for variant in VARIANTS:
        o = ("ours", variant)
        verdict = f"ours / limit = {med(o) / med(('limit', variant)):.2f} (target <= 1.2)"
        if ("pnpxai", variant) in results:
            verdict += f", pnpxai / ours = {med(('pnpxai', variant)) / med(o):.2f} (target >= 1.0)"
        print(f"{variant}: {verdict}")
    if worker is not None:
        print(f"pnpxai {worker.version} in {args.venv}")


if __name__ == "__main__":
    main()
