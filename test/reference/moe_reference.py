"""NumPy reference for moe-mlir's MoE layer semantics (DESIGN.md section 4).

An independent implementation written from the formulas, not from the C++
runtime: vectorised NumPy (one-hot/cumsum positions as in DeepSpeed's gating,
einsum FFNs), so that a shared misreading is unlikely. It is the reference
that runtime tests and, later, whole compiled models are compared against.

Conventions: weights in torch.nn.Linear layout [out, in], expert weights
stacked [E, out, in]; gating in float32 (as specified), FFN math in float64.
`storage` ("f32", "bf16", "f16") rounds what a kernel stores (its inputs are
assumed already rounded by the caller, see `round_to_storage`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

FLT_EPSILON = float(np.finfo(np.float32).eps)

SCORE_FUNCS = ("softmax", "sigmoid", "sparsemixer")
GROUP_SCORES = ("max", "top2_sum")
NORMS = ("none", "selected", "kept", "selected_clamped", "pnorm")
DROP_ORDERS = ("choice_major", "token_major", "probs")
ACTIVATIONS = ("silu", "gelu", "gelu_tanh", "relu")


@dataclass
class RoutingConfig:
    num_experts: int
    top_k: int
    score_func: str = "softmax"
    n_group: int = 1
    topk_group: int = 1
    group_score: str = "max"
    norm: str = "none"
    norm_epsilon: float = 0.0
    routed_scaling_factor: float = 1.0
    capacity_factor: float = 0.0  # 0: dropless
    min_capacity: int = 0
    drop_order: str = "token_major"
    norm_p: float = 1.0  # the p of norm = "pnorm"
    jitter_eps: float = 0.0  # the mask width of score_func = "sparsemixer"

    def __post_init__(self):
        assert self.score_func in SCORE_FUNCS, self.score_func
        assert self.group_score in GROUP_SCORES, self.group_score
        assert self.norm in NORMS, self.norm
        assert self.drop_order in DROP_ORDERS, self.drop_order
        assert 1 <= self.top_k <= self.num_experts


@dataclass
class FfnConfig:
    kind: str = "gated"  # "gated" (SwiGLU family) or "plain" (fc2(act(fc1)))
    activation: str = "silu"

    def __post_init__(self):
        assert self.kind in ("gated", "plain"), self.kind
        assert self.activation in ACTIVATIONS, self.activation


@dataclass
class GateOutput:
    ids: np.ndarray  # [S, k] int32
    weights: np.ndarray  # [S, k] float32
    slots: np.ndarray  # [S, k] int32, -1 = dropped
    counts: np.ndarray  # [E] int32
    capacity: int


# --- storage rounding -------------------------------------------------------


def round_to_bf16(a: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even)."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = (bits + (np.uint32(0x7FFF) + ((bits >> 16) & 1))) & np.uint32(
        0xFFFF0000
    )
    nan = np.isnan(a)
    out = rounded.view(np.float32).copy()
    out[nan] = np.nan
    return out


def round_to_storage(a: np.ndarray, storage: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if storage == "f32":
        return a.copy()
    if storage == "bf16":
        return round_to_bf16(a)
    if storage == "f16":
        return a.astype(np.float16).astype(np.float32)
    raise ValueError(f"unknown storage dtype {storage}")


# --- building blocks --------------------------------------------------------


def linear(x, w, b=None):
    """x[..., in] . w[out, in]^T (+ b), in float64."""
    y = np.asarray(x, np.float64) @ np.asarray(w, np.float64).T
    return y if b is None else y + np.asarray(b, np.float64)


def activation(name: str, v: np.ndarray) -> np.ndarray:
    if name == "silu":
        return v / (1.0 + np.exp(-v))
    if name == "gelu":
        erf = np.vectorize(math.erf, otypes=[np.float64])
        return 0.5 * v * (1.0 + erf(v / math.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))
    if name == "relu":
        return np.maximum(v, 0.0)
    raise ValueError(name)


def router(x, wg, bias=None) -> np.ndarray:
    """logits[S, E] = x . Wg^T (+ bias), as float32."""
    return linear(x, wg, bias).astype(np.float32)


def _positions_in_order(ids_in_order: np.ndarray, num_experts: int) -> np.ndarray:
    """Running per-expert position of each choice, in the given order."""
    one_hot = np.eye(num_experts, dtype=np.int64)[ids_in_order]
    return (np.cumsum(one_hot, axis=0) - 1)[np.arange(len(ids_in_order)), ids_in_order]


def _sparsemixer_weights(logits, ids, jitter_eps):
    """PhiMoE's sparsemixer in eval mode (transformers' modeling_phimoe.py):
    per choice, the softmax at the chosen expert over the logits within
    2 * jitter_eps (relative) of its logit; the second choice excludes the
    first expert."""
    assert ids.shape[1] == 2, "sparsemixer picks 2 experts"
    limit = np.float32(2 * jitter_eps)
    weights = np.empty(ids.shape, np.float32)
    candidates = logits.copy()
    for j in range(2):
        top = np.take_along_axis(candidates, ids[:, j:j + 1], axis=1)
        factor = np.maximum(np.abs(logits), top)
        with np.errstate(invalid="ignore", divide="ignore"):
            masked = (top - logits) / factor > limit
        kept = np.where(masked, -np.inf, candidates)
        exp = np.exp(kept - top)
        weights[:, j] = (np.float32(1.0) / exp.sum(axis=1)).astype(np.float32)
        np.put_along_axis(candidates, ids[:, j:j + 1], -np.inf, axis=1)
    return weights


def gate(logits: np.ndarray, cfg: RoutingConfig, correction_bias=None) -> GateOutput:
    logits = np.asarray(logits, np.float32)
    S, E = logits.shape
    k = cfg.top_k
    assert E == cfg.num_experts

    # 1. scores (float32, as the spec says).
    if cfg.score_func == "sparsemixer":
        scores = logits.copy()
    elif cfg.score_func == "softmax":
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        scores = exp / exp.sum(axis=1, keepdims=True)
    else:
        scores = np.float32(1.0) / (np.float32(1.0) + np.exp(-logits))
    scores = scores.astype(np.float32)

    # 2. selection scores.
    sel = scores.copy()
    if correction_bias is not None:
        sel = sel + np.asarray(correction_bias, np.float32)[None, :]

    # 3. group-limited selection.
    if cfg.n_group > 1:
        groups = sel.reshape(S, cfg.n_group, E // cfg.n_group)
        if cfg.group_score == "max":
            group_scores = groups.max(axis=2)
        else:
            group_scores = np.sort(groups, axis=2)[:, :, -2:].sum(axis=2)
        best_groups = np.argsort(-group_scores, axis=1, kind="stable")[:, : cfg.topk_group]
        keep = np.zeros((S, cfg.n_group), dtype=bool)
        np.put_along_axis(keep, best_groups, True, axis=1)
        sel = np.where(np.repeat(keep, E // cfg.n_group, axis=1), sel, -np.inf)

    # 4. top-k, descending, ties to the lower expert (stable sort).
    ids = np.argsort(-sel, axis=1, kind="stable")[:, :k]

    # 5. unbiased weights.
    weights = np.take_along_axis(scores, ids, axis=1).astype(np.float32)
    if cfg.score_func == "sparsemixer":
        weights = _sparsemixer_weights(logits, ids, cfg.jitter_eps)

    # 6. capacity and slots.
    dropless = cfg.capacity_factor == 0
    if dropless:
        slots = _positions_in_order(ids.reshape(-1), E).reshape(S, k)
        counts = np.bincount(ids.reshape(-1), minlength=E)
        capacity = int(counts.max()) if S > 0 else 0
    else:
        capacity = max(cfg.min_capacity, math.ceil(k * S / E * cfg.capacity_factor))
        if cfg.drop_order == "token_major":
            slots = _positions_in_order(ids.reshape(-1), E).reshape(S, k)
        elif cfg.drop_order == "choice_major":
            slots = _positions_in_order(ids.T.reshape(-1), E).reshape(k, S).T
        else:  # probs: per expert, keep the C highest scores (ties: lower token)
            chosen = np.zeros((S, E), dtype=bool)
            np.put_along_axis(chosen, ids, True, axis=1)
            expert_scores = np.full((S, E), -np.inf, dtype=np.float32)
            np.put_along_axis(expert_scores, ids, weights, axis=1)
            order = np.argsort(-expert_scores, axis=0, kind="stable")
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.arange(S)[:, None].repeat(E, 1), axis=0)
            kept = chosen & (rank < capacity)
            token_slots = np.cumsum(kept, axis=0) - 1
            slots = np.where(
                np.take_along_axis(kept, ids, axis=1),
                np.take_along_axis(token_slots, ids, axis=1),
                capacity,  # marks a drop below
            )
        slots = np.where(slots < capacity, slots, -1)
        counts = np.bincount(ids[slots >= 0], minlength=E)
    kept = slots >= 0

    # 7. normalisation, 8. routed scaling.
    if cfg.norm in ("selected", "selected_clamped"):
        total = weights.sum(axis=1, keepdims=True)
        epsilon = np.float32(cfg.norm_epsilon)
        denominator = total + epsilon if cfg.norm == "selected" else np.maximum(total, epsilon)
        safe = np.where(denominator > 0, denominator, 1)
        weights = np.where(denominator > 0, weights / safe, 0)
    if cfg.norm == "pnorm":  # torch.norm(w, p) over the k, in fp32
        p = np.float32(cfg.norm_p)
        total = np.power(np.power(np.abs(weights.astype(np.float32)), p).sum(axis=1, keepdims=True),
                         np.float32(1) / p)
        safe = np.where(total > 0, total, 1)
        weights = np.where(total > 0, weights / safe, 0)
    weights = np.where(kept, weights, 0)
    if cfg.norm == "kept":
        weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), FLT_EPSILON)
    weights = (weights * np.float32(cfg.routed_scaling_factor)).astype(np.float32)

    return GateOutput(
        ids=ids.astype(np.int32),
        weights=weights,
        slots=slots.astype(np.int32),
        counts=counts.astype(np.int32),
        capacity=int(capacity),
    )


def dispatch(x: np.ndarray, g: GateOutput, num_experts: int) -> np.ndarray:
    """Expert-major buffer [E, C, H]: kept token rows at (expert, slot)."""
    S, H = x.shape
    buf = np.zeros((num_experts, g.capacity, H), dtype=np.float32)
    token, choice = np.nonzero(g.slots >= 0)
    buf[g.ids[token, choice], g.slots[token, choice]] = x[token]
    return buf


def stored_hidden(h: np.ndarray, storage: str) -> np.ndarray:
    """An FFN's hidden activations as the down projection reads them: before
    bf16 weights rounded to bf16 (as transformers and both backends store
    them), else exact."""
    return round_to_bf16(h) if storage == "bf16" else h


def ffn(x: np.ndarray, params: Dict[str, np.ndarray], cfg: FfnConfig,
        storage: str = "f32") -> np.ndarray:
    """One FFN on x[..., H]; params w1 [F,H], w_up [F,H] (gated), w2 [H,F],
    optional b1 [F], b2 [H]."""
    if cfg.kind == "gated":
        h = activation(cfg.activation, linear(x, params["w1"])) * linear(x, params["w_up"])
    else:
        h = activation(cfg.activation, linear(x, params["w1"], params.get("b1")))
    h = stored_hidden(h, storage)
    return linear(h, params["w2"], params.get("b2") if cfg.kind == "plain" else None)


def experts(buf: np.ndarray, params: Dict[str, np.ndarray], cfg: FfnConfig,
            rows: Optional[np.ndarray] = None, storage: str = "f32") -> np.ndarray:
    """Grouped FFN over buf[E, C, H] with stacked weights (w1 [E,F,H], w_up
    [E,F,H], w2 [E,H,F], b1 [E,F], b2 [E,H]). Rows at or past rows[e] are 0."""
    x = np.asarray(buf, np.float64)
    gate_proj = np.einsum("ech,efh->ecf", x, params["w1"])
    if cfg.kind == "gated":
        h = activation(cfg.activation, gate_proj) * np.einsum("ech,efh->ecf", x, params["w_up"])
    else:
        if params.get("b1") is not None:
            gate_proj = gate_proj + params["b1"][:, None, :]
        h = activation(cfg.activation, gate_proj)
    y = np.einsum("ecf,ehf->ech", stored_hidden(h, storage), params["w2"])
    if cfg.kind == "plain" and params.get("b2") is not None:
        y = y + params["b2"][:, None, :]
    if rows is not None:
        y = y * (np.arange(buf.shape[1])[None, :] < np.asarray(rows)[:, None])[..., None]
    return y


def combine(y: np.ndarray, g: GateOutput, addend=None) -> np.ndarray:
    """out[s] = addend[s] + sum_j w[s,j] * y[ids[s,j], slots[s,j]] (kept)."""
    kept = g.slots >= 0
    rows = np.asarray(y, np.float64)[g.ids, np.where(kept, g.slots, 0)]  # [S,k,H]
    out = np.einsum("sk,skh->sh", np.where(kept, g.weights, 0).astype(np.float64), rows)
    return out if addend is None else out + addend


def residual_mix(x, wc, bc, moe_out, mlp_out) -> np.ndarray:
    """PR-MoE: coef = softmax(x . Wc^T + bc); moe * coef0 + mlp * coef1."""
    logits = linear(x, wc, bc)
    coef = np.exp(logits - logits.max(axis=1, keepdims=True))
    coef /= coef.sum(axis=1, keepdims=True)
    return moe_out * coef[:, :1] + mlp_out * coef[:, 1:]


def shared_add(routed, shared, x=None, w_sg=None) -> np.ndarray:
    """routed + shared, or routed + sigmoid(x . w_sg^T) * shared (Qwen2-MoE)."""
    if w_sg is None:
        return routed + shared
    return routed + 1.0 / (1.0 + np.exp(-linear(x, w_sg))) * shared


# --- a whole layer ----------------------------------------------------------


@dataclass
class LayerConfig:
    routing: RoutingConfig
    ffn: FfnConfig = field(default_factory=FfnConfig)
    storage: str = "f32"
    shared: Optional[FfnConfig] = None  # shared experts (DeepSeek / Qwen)
    shared_gated: bool = False  # Qwen2-MoE sigmoid gate on the shared expert
    shared_scale: float = 1.0  # multiplies the shared output (Granite's residual_multiplier)
    residual_mlp: Optional[FfnConfig] = None  # PR-MoE residual MLP
    residual: bool = True  # x + layer(x)


def moe_layer(x: np.ndarray, params: Dict[str, np.ndarray], cfg: LayerConfig) -> Dict[str, object]:
    """One MoE layer on x[S, H] (already rounded to storage). params keys:
    gate.weight, gate.bias?, gate.correction_bias?, experts.{w1,w_up,w2,b1,b2}
    stacked, shared.*, shared_gate.weight, mlp.*, coefficient.{weight,bias}.
    Returns every intermediate and `out`. Kernel outputs are rounded to
    storage exactly where the runtime stores them."""
    q = lambda a: round_to_storage(a, cfg.storage)
    E = cfg.routing.num_experts
    logits = router(x, params["gate.weight"], params.get("gate.bias"))
    g = gate(logits, cfg.routing, params.get("gate.correction_bias"))
    buf = dispatch(x, g, E)  # a copy: exact in storage
    expert_params = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("experts.")}
    y = q(experts(buf, expert_params, cfg.ffn, rows=g.counts, storage=cfg.storage))
    moe_out = q(combine(y, g))
    if cfg.shared is not None:
        shared_params = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("shared.")}
        shared_out = q(ffn(x, shared_params, cfg.shared, cfg.storage))
        if cfg.shared_scale != 1.0:
            shared_out = q(shared_out * np.float64(cfg.shared_scale))
        w_sg = params["shared_gate.weight"] if cfg.shared_gated else None
        moe_out = q(shared_add(moe_out, shared_out, x, w_sg))
    if cfg.residual_mlp is not None:
        mlp_params = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("mlp.")}
        mlp_out = q(ffn(x, mlp_params, cfg.residual_mlp, cfg.storage))
        moe_out = q(residual_mix(x, params["coefficient.weight"], params.get("coefficient.bias"),
                                 moe_out, mlp_out))
    out = q(x + moe_out) if cfg.residual else moe_out
    return {"logits": logits, "gate": g, "dispatched": buf, "expert_out": y,
            "moe_out": moe_out, "out": out}
