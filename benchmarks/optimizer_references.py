"""Reference trajectories of torch.optim and the official adam-mini for tests/test_optimizers.py.

Not a neurofx dependency and not run by the tests: it needs torch and adam-mini, which neurofx
never installs. Run it in a separate virtual environment, e.g.

    python3 -m venv /tmp/torchref
    /tmp/torchref/bin/pip install torch adam-mini==1.1.1 numpy
    /tmp/torchref/bin/python benchmarks/optimizer_references.py

and commit the file it writes (``tests/fixtures/optim/torch_references.npz``, about 0.7 MB).
It imports nothing from neurofx.

The problem: 15 named float32 tensors (674 parameters, names in the Hugging Face style so that
the official Adam-mini sees an embedding, per-head query/key, per-neuron value/output/MLP
blocks, whole-tensor "other" blocks, biases and norms), fixed initial values and 200 recorded
gradients (float16-representable values, stored as float16 to halve the file; converted to
float32 exactly). Each optimizer configuration runs 200 steps on one CPU thread with the
single-tensor code (``foreach=False``); the file keeps the parameters after the steps in
``CHECKPOINTS`` and the final state under neurofx's (= torch's) state names. Default
configurations also record the optimizer's default hyper-parameters (its signature), so the
tests check neurofx's defaults too.

Fixture keys: ``names``, ``shapes`` (n, 2; 1-D shapes as (n, 0)), ``w0``, ``grads`` (float16,
steps x numel, tensors packed in ``names`` order), ``checkpoints``, ``mini_block_sizes`` (the
official Adam-mini partition, read back from its state), ``mini_no_decay`` (its no-decay
flags), ``meta`` (JSON: versions, command), and per configuration ``cfg/<id>/name`` (neurofx
optimizer name), ``cfg/<id>/hyper`` (JSON, the torch keyword arguments, lists for tuples),
``cfg/<id>/defaults`` (JSON, default configurations only), ``cfg/<id>/params`` (checkpoints x
numel) and ``cfg/<id>/state/<slot>`` (numel, or one per block for Adam-mini's ``exp_avg_sq``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import sys
from pathlib import Path

import numpy as np

try:
    import torch
    from adam_mini import Adam_mini
except ImportError as exc:  # one line, the fix
    sys.exit(f"optimizer_references.py: {exc}; run it with a Python that has torch and "
             "adam-mini (see the module docstring), not neurofx's venv")

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "optim" / "torch_references.npz"
STEPS = 200
CHECKPOINTS = (1, 5, 25, 100, 200)
DIM, N_HEADS = 8, 2  # Adam-mini's dim / n_heads: a query/key head block is 8 * 8 / 2 = 32

# (name, shape): what the official Adam-mini 1.1.1 makes of each (see its step()):
PARAMS = [
    ("model.embed_tokens.weight", (6, 8)),              # embedding: one v per row (token)
    ("model.layers.0.input_layernorm.weight", (8,)),    # "norm": no decay; other: one v
    ("model.layers.0.self_attn.q_proj.weight", (8, 8)),  # query: one v per head (32)
    ("model.layers.0.self_attn.k_proj.weight", (8, 8)),  # key: one v per head
    ("model.layers.0.self_attn.v_proj.weight", (8, 8)),  # value: one v per row
    ("model.layers.0.self_attn.o_proj.weight", (8, 8)),  # attention output: one v per row
    ("model.layers.0.self_attn.o_proj.bias", (8,)),      # bias: Adam (one v per element), no decay
    ("model.layers.0.ln_2.weight", (8,)),               # "ln": no decay; other: one v
    ("model.layers.0.ln_2.bias", (8,)),                 # bias
    ("model.layers.0.mlp.up.weight", (12, 8)),          # MLP: one v per row
    ("model.layers.0.mlp.up.bias", (12,)),              # bias
    ("model.layers.0.mlp.down.weight", (8, 12)),        # MLP: one v per row
    ("model.layers.1.mlp.proj.weight", (5, 13)),        # MLP, odd rows of 13
    ("model.gate.weight", (3, 7)),                      # other: one v for the tensor, decayed
    ("lm_head.weight", (6, 8)),                         # output: one v per row, decayed
]

T = torch.optim
# id -> (neurofx name, torch class, torch keyword arguments); "" ids suffix = defaults
CONFIGS = {
    "sgd": ("sgd", T.SGD, {}),
    "sgd-momentum-dampening-wd": ("sgd", T.SGD, {"lr": 0.01, "momentum": 0.8, "dampening": 0.3,
                                                 "weight_decay": 0.05}),
    "momentum": ("momentum", T.SGD, {"momentum": 0.9}),
    "momentum-lr-wd": ("momentum", T.SGD, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01}),
    "nesterov": ("nesterov", T.SGD, {"momentum": 0.9, "nesterov": True}),
    "nesterov-lr-wd": ("nesterov", T.SGD, {"lr": 0.01, "momentum": 0.9, "nesterov": True,
                                           "weight_decay": 0.01}),
    "rprop": ("rprop", T.Rprop, {}),
    "rprop-etas-clamp": ("rprop", T.Rprop, {"lr": 0.05, "etas": [0.3, 1.5],
                                            "step_sizes": [1e-3, 0.2]}),
    "adagrad": ("adagrad", T.Adagrad, {}),
    "adagrad-decay-wd-init": ("adagrad", T.Adagrad, {"lr": 0.05, "lr_decay": 0.01,
                                                     "weight_decay": 0.1,
                                                     "initial_accumulator_value": 0.5}),
    "rmsprop": ("rmsprop", T.RMSprop, {}),
    "rmsprop-centered": ("rmsprop", T.RMSprop, {"lr": 1e-3, "centered": True}),
    "rmsprop-momentum-wd": ("rmsprop", T.RMSprop, {"lr": 1e-3, "momentum": 0.9,
                                                   "weight_decay": 0.01}),
    "rmsprop-centered-momentum": ("rmsprop", T.RMSprop, {"lr": 1e-3, "centered": True,
                                                         "momentum": 0.5, "alpha": 0.95}),
    "adam": ("adam", T.Adam, {}),
    "adam-l2-amsgrad": ("adam", T.Adam, {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True,
                                         "betas": [0.8, 0.99]}),
    "adamw": ("adamw", T.AdamW, {}),
    "adamw-amsgrad": ("adamw", T.AdamW, {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True}),
    "nadam": ("nadam", T.NAdam, {}),
    "nadam-l2": ("nadam", T.NAdam, {"weight_decay": 0.1, "momentum_decay": 0.01}),
    "nadam-decoupled": ("nadam", T.NAdam, {"weight_decay": 0.1,
                                           "decoupled_weight_decay": True}),
    "adadelta": ("adadelta", T.Adadelta, {}),
    "adadelta-wd": ("adadelta", T.Adadelta, {"lr": 0.5, "rho": 0.95, "weight_decay": 0.1,
                                             "eps": 1e-5}),
    "adam-mini": ("adam-mini", Adam_mini, {}),
    "adam-mini-wd": ("adam-mini", Adam_mini, {"lr": 1e-2, "weight_decay": 0.1,
                                              "betas": [0.9, 0.95], "eps": 1e-6}),
}
DEFAULT_IDS = ("sgd", "momentum", "nesterov", "rprop", "adagrad", "rmsprop", "adam", "adamw",
               "nadam", "adadelta", "adam-mini")
# torch's per-element state names (the same names in neurofx's state_dict)
STATE = {"momentum_buffer", "prev", "step_size", "sum", "square_avg", "grad_avg",
         "acc_delta", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}


def problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Initial parameters (float32) at a layer's initialisation scale (uniform in
    +-1/sqrt(fan_in), fan_in the last dimension; norm scales 1 +- 0.1) and recorded gradients
    at a trained model's scale (float16 values): a persistent mean per element, so gradient
    signs sometimes persist (Rprop grows and shrinks steps), plus noise.

    The scale matters for the comparison: float32 carries about 1e-7 * |w| of rounding per
    step, so where a parameter that was once of size ~1 or more passes near 0, two correct
    float32 implementations that round in a different order differ by more than atol 1e-7.
    At initialisation scale (|w| <= 0.4) the 200-step noise stays below it."""
    rng = np.random.default_rng(seed)
    w0, mean, scale = [], [], []
    for name, shape in PARAMS:
        n = int(np.prod(shape))
        if "norm" in name or ".ln" in name and name.endswith("weight"):
            w0.append(1.0 + rng.uniform(-0.1, 0.1, n))
        else:
            k = 1.0 / np.sqrt(shape[-1])
            w0.append(rng.uniform(-k, k, n))
        mean.append(rng.normal(0.0, 0.05, n))
        scale.append(rng.uniform(0.01, 0.2, n))
    mean, scale = np.concatenate(mean), np.concatenate(scale)
    noise = rng.normal(0.0, 1.0, (STEPS, mean.size))
    return np.concatenate(w0).astype(np.float32), (mean + scale * noise).astype(np.float16)


def split(flat: np.ndarray) -> list[np.ndarray]:
    out, pos = [], 0
    for _, shape in PARAMS:
        n = int(np.prod(shape))
        out.append(flat[pos:pos + n].reshape(shape))
        pos += n
    return out


def pack(tensors) -> np.ndarray:
    return np.concatenate([t.detach().numpy().astype(np.float32).ravel() for t in tensors])


def build(cls, params, hyper):
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()}
    if cls is Adam_mini:
        return Adam_mini(list(zip([n for n, _ in PARAMS], params, strict=True)), dim=DIM,
                         n_heads=N_HEADS, verbose=False, **kwargs)
    return cls(params, foreach=False, **kwargs)


def run(cls, hyper, w0, grads):
    params = [torch.nn.Parameter(torch.tensor(t)) for t in split(w0)]  # copies: w0 stays
    opt = build(cls, params, hyper)
    snaps = []
    for t, g in enumerate(grads.astype(np.float32), 1):
        for p, gt in zip(params, split(g), strict=True):
            p.grad = torch.tensor(gt)
        opt.step()
        if t in CHECKPOINTS:
            snaps.append(pack(params))
    state = {}
    if cls is Adam_mini:
        m, v = [], []
        for p in params:
            st = opt.state[p]
            m.append(st["m"].reshape(-1))
            v.append((st["v"] if "v" in st else st["vmean"]).reshape(-1))
        state = {"exp_avg": pack(m), "exp_avg_sq": pack(v)}
    else:
        keys = set.intersection(*(set(opt.state[p]) for p in params)) & STATE
        for key in sorted(keys):
            state[key] = pack([opt.state[p][key] for p in params])
    return np.stack(snaps), state, opt, params


def mini_partition(opt, params) -> tuple[np.ndarray, np.ndarray]:
    """Block size and no-decay flag of each tensor, read back from the official optimizer."""
    sizes, no_decay = [], []
    for (name, _), p, group in zip(PARAMS, params, opt.param_groups, strict=True):
        assert group["name"] == name.lower(), (group["name"], name)
        st = opt.state[p]
        n_v = st["v"].numel() if "v" in st else st["vmean"].numel()
        sizes.append(p.numel() // n_v)
        no_decay.append(group["weight_decay"] == 0.0)
    return np.asarray(sizes, np.int64), np.asarray(no_decay)


def signature_defaults(cls) -> dict:
    out = {}
    for key, par in inspect.signature(cls.__init__).parameters.items():
        if par.default is inspect.Parameter.empty or key in ("self", "params"):
            continue
        value = par.default
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    w0, grads = problem()
    import adam_mini
    meta = {"torch": torch.__version__, "adam_mini": getattr(adam_mini, "__version__", None),
            "numpy": np.__version__, "python": platform.python_version(),
            "command": "python benchmarks/optimizer_references.py", "steps": STEPS,
            "dim": DIM, "n_heads": N_HEADS}
    try:
        from importlib.metadata import version
        meta["adam_mini"] = version("adam-mini")
    except Exception:  # noqa: BLE001 - metadata is informative only
        pass
    out = {"names": np.asarray([n for n, _ in PARAMS]),
           "shapes": np.asarray([(s + (0,))[:2] for _, s in PARAMS], np.int64),
           "w0": w0, "grads": grads, "checkpoints": np.asarray(CHECKPOINTS, np.int64)}
    for cid, (name, cls, hyper) in CONFIGS.items():
        snaps, state, opt, params = run(cls, hyper, w0, grads)
        if not np.isfinite(snaps).all():
            raise SystemExit(f"{cid}: non-finite parameters")
        key = f"cfg/{cid}/"
        out[key + "name"] = np.asarray(name)
        out[key + "hyper"] = np.asarray(json.dumps(hyper))
        out[key + "params"] = snaps
        for slot, arr in state.items():
            out[key + "state/" + slot] = arr
        if cid in DEFAULT_IDS:
            out[key + "defaults"] = np.asarray(json.dumps(signature_defaults(cls)))
        if cid == "adam-mini-wd":  # decay > 0: the no-decay flags show
            out["mini_block_sizes"], out["mini_no_decay"] = mini_partition(opt, params)
        moved = float(np.abs(snaps[-1] - w0).max())
        print(f"{cid:28s} max |w200 - w0| = {moved:.4g}")
    out["meta"] = np.asarray(json.dumps(meta))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez_compressed(tmp, **out)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {json.dumps(meta)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
