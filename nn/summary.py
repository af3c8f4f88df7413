"""Per-layer memory accounting from the buffers actually allocated (the device ledger)."""

from __future__ import annotations

import gc

import numpy as np

from .tensor import Tensor


def _layer_of(param_name: str) -> str:
    return param_name.rsplit(".", 1)[0] if "." in param_name else ""


def memory_table(model, batch=None, optimizer=None, input_shapes=None) -> list[dict]:
    """Rows {layer, type, params, param_bytes, grad_bytes, optim_bytes, act_bytes} + a total.

    Parameter/gradient bytes are the layer's slices of the flat buffers; optimizer bytes come
    from ``optimizer.state_bytes_by_param()`` when the optimizer offers it (else its total is
    reported on the total row only); activation bytes (outputs and their gradients) are read
    from the device ledger while one forward+backward at ``batch`` is alive.
    """
    dev = model.device
    per_param_opt = {}
    if optimizer is not None and hasattr(optimizer, "state_bytes_by_param"):
        per_param_opt = optimizer.state_bytes_by_param()
    acts: dict[str, int] = {}
    if batch and input_shapes:
        gc.collect()  # earlier graphs that were never backpropagated still hold buffers
        before = dev.memory.snapshot()
        inputs = [Tensor.zeros((batch, *shape), device=dev) for shape in input_shapes]
        was = model.net.training
        out = model.forward(*inputs)
        out.backward(np.zeros(out.shape, np.float32), retain_graph=True)
        dev.finish()
        after = dev.memory.snapshot()
        model.net.train(was)
        model.zero_grad()
        prefix = model.name + "."
        for (kind, owner), n in after.items():
            if kind == "activations":
                delta = n - before.get((kind, owner), 0)
                if delta > 0:
                    layer = owner[len(prefix):] if owner.startswith(prefix) else owner
                    acts[layer] = acts.get(layer, 0) + delta
        del out, inputs
        gc.collect()
    rows: dict[str, dict] = {}
    modules = dict(model.net.modules())
    for spec in model.store.specs:
        layer = _layer_of(spec.name)
        row = rows.setdefault(layer, {"layer": layer or "(root)",
                                      "type": type(modules.get(layer, model.net)).__name__,
                                      "params": 0, "param_bytes": 0, "grad_bytes": 0,
                                      "optim_bytes": 0, "act_bytes": 0})
        row["params"] += spec.numel
        row["param_bytes"] += 4 * spec.numel
        row["grad_bytes"] += 4 * spec.numel
        row["optim_bytes"] += per_param_opt.get(spec.name, 0)
    for layer, n in acts.items():
        if layer not in rows:
            rows[layer] = {"layer": layer or "(root)",
                           "type": type(modules.get(layer, model.net)).__name__, "params": 0,
                           "param_bytes": 0, "grad_bytes": 0, "optim_bytes": 0, "act_bytes": 0}
        rows[layer]["act_bytes"] += n
    table = [rows[k] for k in sorted(rows, key=_natural_key)]
    plans = dev.memory.total("activations", f"{model.name}.plan")
    if plans:  # the arenas of captured plans (nn/plan.py): their temporaries, reused
        table.append({"layer": "(plan arenas)", "type": "", "params": 0, "param_bytes": 0,
                      "grad_bytes": 0, "optim_bytes": 0, "act_bytes": plans})
    total = {"layer": "total", "type": "", "params": model.store.numel,
             # the flat buffers as allocated (alignment padding included)
             "param_bytes": dev.memory.total("parameters", model.name),
             "grad_bytes": dev.memory.total("gradients", model.name),
             "optim_bytes": (optimizer.state_bytes() if optimizer is not None else 0),
             "act_bytes": sum(acts.values()) + plans}
    return [*table, total]


def _natural_key(name: str):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in name.split(".")]


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_table(model, rows: list[dict]) -> str:
    head = f"{'layer':<24} {'type':<12} {'params':>10} {'weights':>10} {'grads':>10} " \
           f"{'optimizer':>10} {'activations':>12}"
    lines = [f"Model '{model.name}' on {model.device.info.name}", head, "-" * len(head)]
    for r in rows:
        if r["layer"] == "total":
            lines.append("-" * len(head))
        lines.append(f"{r['layer']:<24} {r['type']:<12} {r['params']:>10,} "
                     f"{_fmt_bytes(r['param_bytes']):>10} {_fmt_bytes(r['grad_bytes']):>10} "
                     f"{_fmt_bytes(r['optim_bytes']):>10} {_fmt_bytes(r['act_bytes']):>12}")
    return "\n".join(lines)
