"""What an AttnLRP attribution of a Hugging Face transformer costs over one gradient, in time and in peak memory.

Two random models of about 100M parameters, at sequence length 128 (random token ids, seed 0): a BERT-base-sized
classifier (12 layers, hidden 768, 12 heads) and a LLaMA-style causal language model (12 layers, hidden 768, 12 heads,
MLP 2048, vocabulary 16,000). Per model, the median seconds of one gradient (forward and backward of the explained
logit to the input embeddings, the parameters left trainable as loaded, so weight gradients are computed too), of
the gradient to the input embeddings only, and of one LRPAttn attribution under AttnLRP and under CP-LRP, all
repetitions interleaved; each as a ratio over the gradient. ``--memory`` adds the peak resident memory of a fresh
process that runs one gradient or one attribution (Linux's VmHWM, reset after the model is built).

    python benchmarks/hf_cost.py --memory --save benchmarks/RESULTS-hf_cost.json
    python benchmarks/hf_cost.py --models bert --repeats 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
import transformers
from _timing import interleaved_medians, machine, status_mib, table

from explainers.attnlrp import LRPAttn, TextClassifier

SHAPE = {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12}
CONFIGS = {
    "bert": lambda: transformers.BertForSequenceClassification(
        transformers.BertConfig(num_labels=2, intermediate_size=3072, **SHAPE)
    ),
    "llama": lambda: transformers.LlamaForCausalLM(
        transformers.LlamaConfig(vocab_size=16_000, intermediate_size=2048, num_key_value_heads=12, **SHAPE)
    ),
}
HERE = Path(__file__).resolve().parent


def setup(name: str, batch: int, length: int) -> tuple[TextClassifier, torch.Tensor, torch.Tensor]:
    """The model (random weights drawn from seed 0, eval mode), token ids and the predicted targets."""
    torch.manual_seed(0)
    model = TextClassifier(CONFIGS[name]().eval())
    vocab = model.vocab_size
    ids = torch.randint(5, vocab, (batch, length), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        targets = model(ids).argmax(1)
    return model, ids, targets


def runs(model: TextClassifier, ids: torch.Tensor, targets: torch.Tensor) -> dict:
    """label -> a function that runs it once."""
    hf = model.model
    embeddings = hf.get_input_embeddings()

    def gradient(weights: bool) -> None:
        x = embeddings(ids).detach().requires_grad_(True)
        output = hf(inputs_embeds=x).logits
        logits = output[:, -1] if output.dim() == 3 else output
        chosen = logits.gather(1, targets[:, None]).sum()
        if weights:
            chosen.backward()
            hf.zero_grad(set_to_none=True)
        else:
            torch.autograd.grad(chosen, x)

    explainers = {rule: LRPAttn(model, attention=rule) for rule in ("attnlrp", "cp")}
    return {
        "gradient": lambda: gradient(True),
        "input gradient": lambda: gradient(False),
        **{f"LRPAttn ({rule})": (lambda e=e: e.attribute(ids, targets)) for rule, e in explainers.items()},
    }


def timing(name: str, batch: int, length: int, repeats: int) -> dict[str, float]:
    model, ids, targets = setup(name, batch, length)
    return interleaved_medians(runs(model, ids, targets), repeats)


def memory_child(name: str, kind: str, batch: int, length: int) -> None:
    """In a fresh process: the model and its inputs, the peak reset, one run of ``kind``; prints MiB before/peak."""
    run = runs(*setup(name, batch, length))[kind]
    Path("/proc/self/clear_refs").write_text("5")
    before = status_mib("VmRSS")
    run()
    print(json.dumps({"before": before, "after": status_mib("VmHWM")}))


def memory(name: str, batch: int, length: int) -> dict[str, dict[str, float]]:
    results = {}
    for kind in ("gradient", "input gradient", "LRPAttn (attnlrp)", "LRPAttn (cp)"):
        command = [sys.executable, __file__, "--memory-child", name, kind, "--batch", str(batch)]
        command += ["--length", str(length)]
        output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=HERE).stdout
        results[kind] = json.loads(output.strip().splitlines()[-1])
    return results


def report(records: dict) -> str:
    lines = [f"machine: {records['machine']}", f"batch {records['batch']} x {records['length']} tokens", ""]
    rows = []
    for name, seconds in records["timing"].items():
        base = seconds["gradient"]
        cells = [f"{seconds[label]:.3f} s ({seconds[label] / base:.2f}x)" for label in seconds]
        rows.append([name, *cells])
    header = ["model", *next(iter(records["timing"].values()))]
    lines.append(table(header, rows))
    if records.get("memory"):
        lines.append("")
        rows = []
        for name, kinds in records["memory"].items():
            peaks = [v["after"] - v["before"] for v in kinds.values()]
            cells = [f"{peak:.0f} MiB ({peak / peaks[0]:.2f}x)" for peak in peaks]  # over the gradient's
            rows.append([name, *cells])
        lines.append(table(["peak memory over the model", *next(iter(records["memory"].values()))], rows))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--save")
    parser.add_argument("--memory-child", nargs=2, metavar=("MODEL", "KIND"))
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child, args.batch, args.length)
        return
    records = {"machine": machine(), "batch": args.batch, "length": args.length, "timing": {}, "memory": {}}
    for name in args.models:
        records["timing"][name] = timing(name, args.batch, args.length, args.repeats)
        if args.memory:
            records["memory"][name] = memory(name, args.batch, args.length)
    if args.save:
        Path(args.save).write_text(json.dumps(records, indent=2) + "\n")
    print(report(records))


if __name__ == "__main__":
    main()
