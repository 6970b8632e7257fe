"""The CUDA path in one short run: explainers, metrics and tune() on the GPU agree with the CPU; every explainer
conserves relevance on the GPU on architectures that exercise each rule (depthwise convolutions, gating, SiLU,
LayerNorm, shifted-window attention; float64, biases zeroed, as ``benchmarks/zoo.py``); and one trial (attribute +
AbPC with 10 steps, ResNet-50, 4 images of 224x224) against its physical limit on the GPU.

    python benchmarks/cuda_check.py [--device cuda] [--repeats 5] [--zoo mobilenet_v2 efficientnet_b0 ...]
"""

import argparse
import statistics
import sys
import time

import torch
import torchvision
from zennit.attribution import Gradient
from zennit.composites import EpsilonPlus
from zennit.torchvision import ResNetCanonizer

from explainers import LRPEpsilonGammaBox, LRPEpsilonPlus, LRPUniformEpsilon
from metrics import AbPC
from tuner import Budget, Report, Search, tune

#: one architecture per family of rules the CNN-only check above does not reach
ZOO = (
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "regnet_y_400mf",
    "densenet121",
    "swin_v2_t",
    "vit_b_32",
)


def check(name: str, ok: bool, detail: str = "") -> bool:
    print(f"{'PASS' if ok else 'FAIL'} {name} {detail}")
    return ok


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(function, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def agreement(device: torch.device) -> bool:
    # cuDNN's default TF32 convolutions round to 10 mantissa bits; compare in full float32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([1, 2, 3, 4])
    ok = True
    for cls in (LRPUniformEpsilon, LRPEpsilonGammaBox, LRPEpsilonPlus):
        cpu = cls(model).attribute(x, y)
        gpu_model = torchvision.models.resnet18(num_classes=10).eval()
        gpu_model.load_state_dict(model.state_dict())
        gpu_model.to(device)
        state = {k: v.clone() for k, v in gpu_model.state_dict().items()}
        explainer = cls(gpu_model)
        gpu = explainer.attribute(x, y)  # CPU inputs go to the model's device
        cosine = torch.nn.functional.cosine_similarity(gpu.cpu().flatten(1), cpu.flatten(1)).min().item()
        close = cosine > 0.99999
        untouched = all(torch.equal(state[k], v) for k, v in gpu_model.state_dict().items())
        ok &= check(
            f"{cls.__name__} on {device} equals CPU",
            close and gpu.device.type == device.type,
            f"(lowest cosine similarity {cosine:.6f}, max abs diff {(gpu.cpu() - cpu).abs().max().item():.2e}"
            f" of max {cpu.abs().max().item():.2e})",
        )
        ok &= check(f"{cls.__name__} leaves the {device} model untouched", untouched)
    attributions = LRPEpsilonPlus(model).attribute(x, y)
    cpu_scores = AbPC(model, n_steps=10).evaluate(x, y, attributions)
    gpu_model.to(device)
    gpu_scores = AbPC(gpu_model, n_steps=10, batch_size=64).evaluate(
        x.to(device), y.to(device), attributions.to(device)
    )
    ok &= check(
        f"AbPC on {device} equals CPU",
        torch.allclose(gpu_scores.cpu(), cpu_scores, atol=1e-4),
        f"({gpu_scores.cpu().tolist()} vs {cpu_scores.tolist()})",
    )
    result = tune(
        LRPEpsilonGammaBox,
        gpu_model,
        (x, y),
        budget=Budget(n_trials=4, n_samples=4),
        search=Search(batch_size=4),
        report=Report(show_progress_bar=False),
        device=device,
    )
    ok &= check(
        f"tune() on {device}",
        len(result.study.trials) == 4 and result.best_value >= result.default_value,
        f"(best {result.best_value:.4f}, default {result.default_value:.4f})",
    )
    return ok


def zoo_conservation(device: torch.device, names: list[str]) -> bool:
    """zoo.py's conservation cells, computed on ``device``: each explainer's largest |sum - 1| over 2 photographs."""
    from zoo import build, conservation, photos

    ok = True
    for name in names:
        size = 224 if name.startswith("maxvit") else 64
        cells = conservation(build(name, size).to(device), photos(size, 2).to(device), 2)
        worst = max((float(cell) for cell in cells.values() if _number(cell)), default=float("inf"))
        ok &= check(
            f"{name} conserves on {device}",
            all(_number(cell) and float(cell) < 1e-4 for cell in cells.values()),
            f"({', '.join(f'{label} {cell}' for label, cell in cells.items())}; largest {worst:.0e})",
        )
    return ok


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def trial_versus_limit(device: torch.device, repeats: int) -> None:
    model = torchvision.models.resnet50().eval().to(device)
    x = torch.randn(4, 3, 224, 224, device=device)
    with torch.no_grad():
        y = model(x).argmax(1)
    metric = AbPC(model, n_steps=10, batch_size=64 if device.type == "cuda" else 8)
    one_hot = torch.eye(1000, device=device)[y]

    def ours():
        metric.evaluate(x, y, LRPEpsilonPlus(model).attribute(x, y))

    def limit():
        with Gradient(model, EpsilonPlus(canonizers=[ResNetCanonizer()])) as attributor:
            attributor(x, one_hot)
        with torch.no_grad():
            for _ in range(2 * (10 - 1)):  # the forward passes AbPC needs (its last step is the same for both)
                model(x)

    ours(), limit()  # warm-up
    times = {"ours": [], "limit": []}
    for _ in range(repeats):  # interleaved, so both see the same conditions
        times["ours"].append(timed(ours, device))
        times["limit"].append(timed(limit, device))
    ours_median, limit_median = statistics.median(times["ours"]), statistics.median(times["limit"])
    print(
        f"trial on {torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}: ours {ours_median:.4f} s, "
        f"limit {limit_median:.4f} s, ratio {ours_median / limit_median:.2f} (medians of {repeats})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--zoo", nargs="*", default=list(ZOO), help=f"architectures to check (default {' '.join(ZOO)})")
    args = parser.parse_args()
    device = torch.device(args.device)
    ok = agreement(device)
    ok &= zoo_conservation(device, args.zoo)
    torch.backends.cudnn.allow_tf32 = True  # timings with PyTorch's defaults
    trial_versus_limit(device, args.repeats)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
