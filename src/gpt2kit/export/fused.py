"""The decoder graph written node by node with ONNX Runtime's fused operators (`--fused`).

The traced graph (graphs.py) spells attention, its masks and the past's concatenation as dozens
of small standard operators per layer, which ONNX Runtime runs one by one. This graph has the
same inputs and outputs but uses ONNX Runtime's fused operators (domain com.microsoft):
GroupQueryAttention (with as many key/value heads as query heads, it is GPT-2's attention: packed
q|k|v in, scores, mask, softmax and the past appended in one kernel), SkipLayerNormalization
(residual add + bias + LayerNorm) and FastGelu (GPT-2's tanh GELU with its bias). It runs on ONNX
Runtime only.

Its past may also be a preallocated buffer: `past_key_values.N.*` of shape (B, nh, capacity, hs)
holding the `attention_mask` width minus the new tokens in its first columns, with `present.N.*`
bound to the same memory. GroupQueryAttention then writes the new keys and values into the buffer
in place, where with a past of exactly the cached length (the standard convention, which works
too) every step copies the whole past into a new present. The model's metadata says so
(PAST_BUFFER); the onnxruntime backend then keeps its cache in one tensor as PyTorch's does.

One more input, `logits_to_keep` (int64 scalar, default 0 = every position), lets a caller ask
for the last N positions' logits only: a prefill of T tokens then skips T - 1 products with the
vocabulary matrix (a third of the work of a 1,024-token prefill of the 124M model). Callers that
know only the standard names never set it.

The attention mask is built once from `attention_mask` and shared by the layers: key j is
visible to query i when j <= i (positions past + i) and j is not padding; a padding query sees
itself, as in GPT2, so its (unused) output stays finite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gpt2kit.backends.onnxruntime_backend import LOGITS_TO_KEEP, PAST_BUFFER
from gpt2kit.export.graphs import input_names, output_names
from gpt2kit.model.gpt2 import GPT2

MS = "com.microsoft"


class _Graph:
    """Nodes and initializers being collected."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []

    def const(self, name: str, value) -> str:
        from onnx import numpy_helper

        value = np.asarray(value)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value) if value.ndim else value, name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], domain: str | None = None, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0] + "/" + op, domain=domain, **attrs))
        return outputs[0]


def _weights(model: GPT2) -> dict[str, np.ndarray]:
    """The model's plain weights as fp32 arrays (export_onnx hands over a GPT2 with LoRA folded in)."""
    return {k: v.detach().to("cpu", torch.float32).numpy() for k, v in model.state_dict().items()}


def _attention_bias(g: _Graph) -> str:
    """(B, 1, S, total) additive mask: 0 where a query may see a key, the lowest float elsewhere."""
    from onnx import TensorProto

    zero, one = g.const("i64_0", np.array(0, np.int64)), g.const("i64_1", np.array(1, np.int64))
    axis0, axis1 = g.const("axes_0", np.array([0], np.int64)), g.const("axes_1", np.array([1], np.int64))
    new = g.node("Gather", [g.node("Shape", ["input_ids"], ["ids_shape"]), one], ["new_length"])
    total = g.node("Gather", [g.node("Shape", ["attention_mask"], ["mask_shape"]), one], ["total_length"])
    past = g.node("Sub", [total, new], ["past_length"])
    keys = g.node("Unsqueeze", [g.node("Range", [zero, total, one], ["key_positions"]), axis0], ["keys_row"])
    queries = g.node("Unsqueeze", [g.node("Range", [past, total, one], ["query_positions"]), axis1], ["queries_col"])
    causal = g.node("LessOrEqual", [keys, queries], ["causal"])  # (S, total)
    real = g.node("Unsqueeze", [g.node("Cast", ["attention_mask"], ["real_keys"], to=TensorProto.BOOL),
                                g.const("axes_1_2", np.array([1, 2], np.int64))], ["real_keys_4d"])  # (B,1,1,total)
    visible = g.node("Or", [g.node("And", [causal, real], ["causal_real"]),
                            g.node("Equal", [keys, queries], ["itself"])], ["visible"])
    return g.node("Where", [visible, g.const("f32_0", np.array(0.0, np.float32)),
                            g.const("f32_min", np.array(np.finfo(np.float32).min, np.float32))], ["attention_bias"])


def _sequence_lengths(g: _Graph) -> None:
    """GroupQueryAttention's seqlens_k (B,) = total - 1 for every row (rows share their columns;
    padding is masked by the bias) and total_sequence_length, both int32."""
    from onnx import TensorProto

    total = g.node("Cast", ["total_length"], ["total_length_i32"], to=TensorProto.INT32)
    rows = g.node("Gather", ["ids_shape", "i64_0"], ["batch_size"])
    g.node("Expand", [g.node("Sub", [total, g.const("i32_1", np.array(1, np.int32))], ["last_column"]),
                      g.node("Unsqueeze", [rows, "axes_0"], ["batch_size_1d"])], ["seqlens_k"])
    # every query row is counted (left padding is masked by the bias): lets rows of a batch take several
    # new tokens after a past
    new = g.node("Cast", ["new_length"], ["new_length_i32"], to=TensorProto.INT32)
    g.node("Expand", [new, "batch_size_1d"], ["query_lengths"])


def _last_positions(g: _Graph, hidden: str) -> str:
    """hidden (B, S, C) cut to its last `logits_to_keep` positions (all of them when it is 0)."""
    one, new = "i64_1", "new_length"  # made by _attention_bias
    asked = g.node("Min", [LOGITS_TO_KEEP, new], ["kept_at_most_all"])
    keep = g.node("Where", [g.node("Equal", [LOGITS_TO_KEEP, "i64_0"], ["keep_all"]), new, asked], ["kept"])
    start = g.node("Unsqueeze", [g.node("Sub", [new, keep], ["first_kept"]), "axes_0"], ["first_kept_1d"])
    end = g.node("Unsqueeze", [new, "axes_0"], ["end_1d"])
    return g.node("Slice", [hidden, start, end, "axes_1", g.node("Unsqueeze", [one, "axes_0"], ["step_1d"])],
                  ["hidden_kept"])


def write_fused_graph(model: GPT2, path: Path, opset: int, external_bytes: int, data_file: str) -> bool:
    """Write GPT2's decoder graph with fused operators to `path` (fp32 weights); past
    `external_bytes` of weights they go to `data_file` beside it (True then)."""
    import onnx
    from onnx import TensorProto, helper

    c = model.config
    w = _weights(model)
    g = _Graph()
    C, eps = c.n_embd, c.layer_norm_epsilon
    g.const(LOGITS_TO_KEEP, np.array(0, np.int64))
    bias = _attention_bias(g)
    x = g.node("Add", [g.node("Gather", [g.const("wte", w["wte.weight"]), "input_ids"], ["token_embeddings"]),
                       g.node("Gather", [g.const("wpe", w["wpe.weight"]), "position_ids"], ["position_embeddings"])],
               ["embeddings"])
    normed = g.node("LayerNormalization", [x, g.const("h.0.ln_1.weight", w["h.0.ln_1.weight"]),
                                           g.const("h.0.ln_1.bias", w["h.0.ln_1.bias"])], ["h.0.ln_1"],
                    axis=-1, epsilon=eps)
    _sequence_lengths(g)
    for i in range(c.n_layer):
        p = f"h.{i}."
        qkv = g.node("MatMul", [normed, g.const(p + "attn.c_attn.weight", w[p + "attn.c_attn.weight"].T)], [p + "qkv"])
        scale = 1.0 / np.sqrt(c.head_dim) if c.scale_attn_weights else 1.0
        if c.scale_attn_by_inverse_layer_idx:
            scale /= i + 1
        # packed q|k|v (GPT-2's c_attn order); the new keys/values are written into the past's buffer
        biased = g.node("Add", [qkv, g.const(p + "attn.c_attn.bias", w[p + "attn.c_attn.bias"])], [p + "qkv_biased"])
        attended = g.node("GroupQueryAttention",
                          [biased, "", "", f"past_key_values.{i}.key", f"past_key_values.{i}.value",
                           "seqlens_k", "total_length_i32", "", "", "", bias, "", "", "", "", "", "query_lengths"],
                          [p + "attention", f"present.{i}.key", f"present.{i}.value"], domain=MS,
                          num_heads=c.n_head, kv_num_heads=c.n_head, scale=float(scale))
        projected = g.node("MatMul", [attended, g.const(p + "attn.c_proj.weight", w[p + "attn.c_proj.weight"].T)],
                           [p + "attn_out"])
        # ln_2(x + attention + its bias), and x + attention + bias itself for the next residual
        g.node("SkipLayerNormalization", [projected, x, g.const(p + "ln_2.weight", w[p + "ln_2.weight"]),
                                          g.const(p + "ln_2.bias", w[p + "ln_2.bias"]),
                                          g.const(p + "attn.c_proj.bias", w[p + "attn.c_proj.bias"])],
               [p + "ln_2", "", "", p + "residual"], domain=MS, epsilon=eps)
        fc = g.node("MatMul", [p + "ln_2", g.const(p + "mlp.c_fc.weight", w[p + "mlp.c_fc.weight"].T)], [p + "fc"])
        fc_bias = g.const(p + "mlp.c_fc.bias", w[p + "mlp.c_fc.bias"])
        if c.activation_function == "gelu_new":  # GPT-2's tanh GELU, its bias added in the same kernel
            hidden = g.node("FastGelu", [fc, fc_bias], [p + "gelu"], domain=MS)
        else:  # the exact GELU of models trained with it (nanoGPT)
            hidden = g.node("Gelu", [g.node("Add", [fc, fc_bias], [p + "fc_biased"])], [p + "gelu"], domain=MS)
        mlp = g.node("MatMul", [hidden, g.const(p + "mlp.c_proj.weight", w[p + "mlp.c_proj.weight"].T)], [p + "mlp"])
        last = i + 1 == c.n_layer
        n = "ln_f" if last else f"h.{i + 1}.ln_1"
        g.node("SkipLayerNormalization", [mlp, p + "residual", g.const(n + ".weight", w[n + ".weight"]),
                                          g.const(n + ".bias", w[n + ".bias"]),
                                          g.const(p + "mlp.c_proj.bias", w[p + "mlp.c_proj.bias"])],
               [n, "", "", f"h.{i + 1}.input"] if not last else [n], domain=MS, epsilon=eps)
        x, normed = f"h.{i + 1}.input", n
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["wte.weight"]
    g.node("MatMul", [_last_positions(g, "ln_f"), g.const("lm_head.weight", head.T)], ["logits"])

    float_ = TensorProto.FLOAT
    names_in, names_out = input_names("decoder", c.n_layer), output_names("decoder", c.n_layer)
    inputs = [helper.make_tensor_value_info(names_in[0], TensorProto.INT64, ["batch", "sequence"]),
              helper.make_tensor_value_info(names_in[1], TensorProto.INT64, ["batch", "total_sequence"]),
              helper.make_tensor_value_info(names_in[2], TensorProto.INT64, ["batch", "sequence"])]
    inputs += [helper.make_tensor_value_info(name, float_, ["batch", c.n_head, "past_sequence", c.head_dim])
               for name in names_in[3:]]
    inputs.append(helper.make_tensor_value_info(LOGITS_TO_KEEP, TensorProto.INT64, []))  # optional: has a default
    outputs = [helper.make_tensor_value_info("logits", float_, ["batch", "kept_sequence", c.vocab_size])]
    outputs += [helper.make_tensor_value_info(name, float_, ["batch", c.n_head, "total_sequence", c.head_dim])
                for name in names_out[1:]]
    graph = helper.make_graph(g.nodes, "gpt2_decoder_fused", inputs, outputs, g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)],
                              producer_name="gpt2kit")
    proto.ir_version = 8  # what ONNX Runtime 1.18 and later read
    helper.set_model_props(proto, dict([PAST_BUFFER]))
    external = sum(t.ByteSize() for t in proto.graph.initializer) > external_bytes
    onnx.save_model(proto, str(path), save_as_external_data=external, all_tensors_to_one_file=True,
                    location=data_file, size_threshold=1024)
    return external
