"""Hugging Face `T5ForConditionalGeneration` checkpoints <-> c4clean `T5`.

Export writes `config.json` + `model.safetensors` in Hugging Face's T5 v1.1 layout (fused projections
split back into q/k/v and wi_0/wi_1); import reads such a directory back (safetensors only, no pickle).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from c4clean.train.checkpoint import atomic_dir
from c4clean.train.model import T5, T5Config

HF_CONFIG_FIELDS = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                    "relative_attention_num_buckets", "relative_attention_max_distance", "dropout_rate",
                    "layer_norm_epsilon", "initializer_factor", "pad_token_id", "eos_token_id",
                    "decoder_start_token_id")


def hf_config(cfg: T5Config) -> dict:
    out = {f: getattr(cfg, f) for f in HF_CONFIG_FIELDS}
    out.update(architectures=["T5ForConditionalGeneration"], model_type="t5", feed_forward_proj="gated-gelu",
               is_encoder_decoder=True, tie_word_embeddings=False, use_cache=True, dtype="float32")
    return out


def to_hf_state_dict(model: T5) -> dict[str, torch.Tensor]:
    """Our parameters under Hugging Face names. The stacks' `embed_tokens` are left out: Hugging Face
    ties them to `shared` on load, which is what T5 does."""
    c = model.cfg
    inner = c.inner_dim
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    out = {"shared.weight": sd["shared.weight"], "lm_head.weight": sd["lm_head.weight"]}
    for stack in ("encoder", "decoder"):
        out[f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = \
            sd[f"{stack}.relative_attention_bias.weight"]
        out[f"{stack}.final_layer_norm.weight"] = sd[f"{stack}.final_norm.weight"]
        n = c.num_decoder_layers if stack == "decoder" else c.num_layers
        for i in range(n):
            src, dst = f"{stack}.layers.{i}", f"{stack}.block.{i}.layer"
            attn = "self_attn" if stack == "decoder" else "attn"
            norm = "self_attn_norm" if stack == "decoder" else "attn_norm"
            q, k, v = sd[f"{src}.{attn}.qkv.weight"].split(inner)
            out.update({f"{dst}.0.SelfAttention.q.weight": q, f"{dst}.0.SelfAttention.k.weight": k,
                        f"{dst}.0.SelfAttention.v.weight": v,
                        f"{dst}.0.SelfAttention.o.weight": sd[f"{src}.{attn}.o.weight"],
                        f"{dst}.0.layer_norm.weight": sd[f"{src}.{norm}.weight"]})
            ffn = 1
            if stack == "decoder":
                k, v = sd[f"{src}.cross_attn.kv.weight"].split(inner)
                out.update({f"{dst}.1.EncDecAttention.q.weight": sd[f"{src}.cross_attn.q.weight"],
                            f"{dst}.1.EncDecAttention.k.weight": k, f"{dst}.1.EncDecAttention.v.weight": v,
                            f"{dst}.1.EncDecAttention.o.weight": sd[f"{src}.cross_attn.o.weight"],
                            f"{dst}.1.layer_norm.weight": sd[f"{src}.cross_attn_norm.weight"]})
                ffn = 2
            wi0, wi1 = sd[f"{src}.ffn.wi.weight"].split(c.d_ff)
            out.update({f"{dst}.{ffn}.DenseReluDense.wi_0.weight": wi0,
                        f"{dst}.{ffn}.DenseReluDense.wi_1.weight": wi1,
                        f"{dst}.{ffn}.DenseReluDense.wo.weight": sd[f"{src}.ffn.wo.weight"],
                        f"{dst}.{ffn}.layer_norm.weight": sd[f"{src}.ffn_norm.weight"]})
    return {k: v.contiguous().clone() for k, v in out.items()}


def from_hf_state_dict(cfg: T5Config, hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of `to_hf_state_dict`: a state dict for `T5(cfg)`."""
    with torch.device("meta"):  # only the names are needed
        expected = set(to_hf_state_dict(T5(cfg)))
    tied = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
    for key in tied & set(hf):
        if not torch.equal(hf[key], hf["shared.weight"]):
            raise ValueError(f"{key} differs from shared.weight: not a T5 checkpoint with shared input embeddings")
    missing, unexpected = expected - set(hf), set(hf) - expected - tied
    if missing or unexpected:
        raise ValueError(f"not a T5 v1.1 checkpoint of this shape: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
    out = {"shared.weight": hf["shared.weight"], "lm_head.weight": hf["lm_head.weight"]}
    for stack in ("encoder", "decoder"):
        out[f"{stack}.relative_attention_bias.weight"] = \
            hf[f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
        out[f"{stack}.final_norm.weight"] = hf[f"{stack}.final_layer_norm.weight"]
        n = cfg.num_decoder_layers if stack == "decoder" else cfg.num_layers
        for i in range(n):
            dst, src = f"{stack}.layers.{i}", f"{stack}.block.{i}.layer"
            attn = "self_attn" if stack == "decoder" else "attn"
            norm = "self_attn_norm" if stack == "decoder" else "attn_norm"
            out[f"{dst}.{attn}.qkv.weight"] = torch.cat(
                [hf[f"{src}.0.SelfAttention.{p}.weight"] for p in "qkv"])
            out[f"{dst}.{attn}.o.weight"] = hf[f"{src}.0.SelfAttention.o.weight"]
            out[f"{dst}.{norm}.weight"] = hf[f"{src}.0.layer_norm.weight"]
            ffn = 1
            if stack == "decoder":
                out[f"{dst}.cross_attn.q.weight"] = hf[f"{src}.1.EncDecAttention.q.weight"]
                out[f"{dst}.cross_attn.kv.weight"] = torch.cat(
                    [hf[f"{src}.1.EncDecAttention.{p}.weight"] for p in "kv"])
                out[f"{dst}.cross_attn.o.weight"] = hf[f"{src}.1.EncDecAttention.o.weight"]
                out[f"{dst}.cross_attn_norm.weight"] = hf[f"{src}.1.layer_norm.weight"]
                ffn = 2
            out[f"{dst}.ffn.wi.weight"] = torch.cat(
                [hf[f"{src}.{ffn}.DenseReluDense.wi_0.weight"], hf[f"{src}.{ffn}.DenseReluDense.wi_1.weight"]])
            out[f"{dst}.ffn.wo.weight"] = hf[f"{src}.{ffn}.DenseReluDense.wo.weight"]
            out[f"{dst}.ffn_norm.weight"] = hf[f"{src}.{ffn}.layer_norm.weight"]
    return out


def export_hf(model: T5, out_dir: str | Path) -> Path:
    """Write a directory `T5ForConditionalGeneration.from_pretrained` loads (float32 weights)."""
    sd = {k: v.float().cpu() for k, v in to_hf_state_dict(model).items()}
    with atomic_dir(out_dir) as tmp:
        save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(hf_config(model.cfg), indent=2) + "\n")
    return Path(out_dir)


def config_from_hf(d: dict) -> T5Config:
    if d.get("model_type") != "t5":
        raise ValueError(f"model_type is {d.get('model_type')!r}, expected 't5'")
    # transformers 4.x marks v1.1 with tie_word_embeddings false; 5.x saves tie_word_embeddings true
    # with scale_decoder_outputs false (and the untied lm_head.weight in the file)
    scaled = d.get("scale_decoder_outputs", d.get("tie_word_embeddings", True) is not False)
    if d.get("feed_forward_proj") != "gated-gelu" or scaled:
        raise ValueError("only the T5 v1.1 layout is supported (feed_forward_proj 'gated-gelu', untied lm_head "
                         "without output scaling: tie_word_embeddings false / scale_decoder_outputs false)")
    fields = {f: d[f] for f in HF_CONFIG_FIELDS if f in d}
    fields.setdefault("num_decoder_layers", fields.get("num_layers"))
    return T5Config(**fields)


def import_hf(hf_dir: str | Path) -> T5:
    """Load a Hugging Face T5 v1.1 directory (config.json + model.safetensors) as a c4clean `T5`."""
    hf_dir = Path(hf_dir)
    weights = hf_dir / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found (only safetensors checkpoints are read, never pickles)")
    cfg = config_from_hf(json.loads((hf_dir / "config.json").read_text()))
    model = T5(cfg)
    model.load_state_dict(from_hf_state_dict(cfg, load_file(str(weights))))
    return model
