"""Hugging Face `T5ForConditionalGeneration` checkpoints <-> c4clean `T5`.

Export writes `config.json` + `model.safetensors` in Hugging Face's T5 v1.1 layout (fused projections
split back into q/k/v and wi_0/wi_1); import reads such a directory back (safetensors only, no pickle).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from c4clean.atomic import replacing_dir
from c4clean.train.model import T5, T5Config

HF_CONFIG_FIELDS = (
    "vocab_size",
    "d_model",
    "d_kv",
    "d_ff",
    "num_layers",
    "num_decoder_layers",
    "num_heads",
    "relative_attention_num_buckets",
    "relative_attention_max_distance",
    "dropout_rate",
    "layer_norm_epsilon",
    "initializer_factor",
    "pad_token_id",
    "eos_token_id",
    "decoder_start_token_id",
)


def hf_config(cfg: T5Config) -> dict:
    out = {f: getattr(cfg, f) for f in HF_CONFIG_FIELDS}
    out.update(
        architectures=["T5ForConditionalGeneration"],
        model_type="t5",
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=True,
        tie_word_embeddings=False,
        use_cache=True,
        dtype="float32",
    )
    return out


def _name_map(cfg: T5Config) -> list[tuple[str, list[str]]]:
    """(our parameter, the Hugging Face parameters it fuses, concatenated along dim 0) for every
    parameter. One table serves both directions, so export and import cannot drift apart."""
    pairs = [("shared.weight", ["shared.weight"]), ("lm_head.weight", ["lm_head.weight"])]
    for stack in ("encoder", "decoder"):
        pairs += [
            (
                f"{stack}.relative_attention_bias.weight",
                [f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"],
            ),
            (f"{stack}.final_norm.weight", [f"{stack}.final_layer_norm.weight"]),
        ]
        decoder = stack == "decoder"
        attn, norm = ("self_attn", "self_attn_norm") if decoder else ("attn", "attn_norm")
        for i in range(cfg.num_decoder_layers if decoder else cfg.num_layers):
            ours, hf = f"{stack}.layers.{i}", f"{stack}.block.{i}.layer"
            pairs += [
                (f"{ours}.{attn}.qkv.weight", [f"{hf}.0.SelfAttention.{p}.weight" for p in "qkv"]),
                (f"{ours}.{attn}.o.weight", [f"{hf}.0.SelfAttention.o.weight"]),
                (f"{ours}.{norm}.weight", [f"{hf}.0.layer_norm.weight"]),
            ]
            if decoder:
                pairs += [
                    (f"{ours}.cross_attn.q.weight", [f"{hf}.1.EncDecAttention.q.weight"]),
                    (f"{ours}.cross_attn.kv.weight", [f"{hf}.1.EncDecAttention.{p}.weight" for p in "kv"]),
                    (f"{ours}.cross_attn.o.weight", [f"{hf}.1.EncDecAttention.o.weight"]),
                    (f"{ours}.cross_attn_norm.weight", [f"{hf}.1.layer_norm.weight"]),
                ]
            ffn = f"{hf}.{2 if decoder else 1}"
            pairs += [
                (
                    f"{ours}.ffn.wi.weight",
                    [f"{ffn}.DenseReluDense.wi_0.weight", f"{ffn}.DenseReluDense.wi_1.weight"],
                ),
                (f"{ours}.ffn.wo.weight", [f"{ffn}.DenseReluDense.wo.weight"]),
                (f"{ours}.ffn_norm.weight", [f"{ffn}.layer_norm.weight"]),
            ]
    return pairs


def to_hf_state_dict(model: T5) -> dict[str, torch.Tensor]:
    """Our parameters under Hugging Face names, fused projections split into equal parts. The stacks'
    `embed_tokens` are left out: Hugging Face ties them to `shared` on load, which is what T5 does."""
    sd = model.state_dict()
    return {
        name: part.detach().contiguous().clone()
        for ours, names in _name_map(model.cfg)
        for name, part in zip(names, sd[ours].chunk(len(names)))
    }


def from_hf_state_dict(cfg: T5Config, hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of `to_hf_state_dict`: a state dict for `T5(cfg)`."""
    pairs = _name_map(cfg)
    expected = {name for _, names in pairs for name in names}
    tied = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
    for key in tied & set(hf):
        if not torch.equal(hf[key], hf["shared.weight"]):
            raise ValueError(
                f"{key} differs from shared.weight: not a T5 checkpoint with shared input embeddings"
            )
    missing, unexpected = expected - set(hf), set(hf) - expected - tied
    if missing or unexpected:
        raise ValueError(
            f"not a T5 v1.1 checkpoint of this shape: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    return {
        ours: torch.cat([hf[n] for n in names]) if len(names) > 1 else hf[names[0]] for ours, names in pairs
    }


def export_hf(model: T5, out_dir: str | Path, vocab_dir: str | Path | None = None, vocab_sha256=None) -> Path:
    """Write a directory `T5ForConditionalGeneration.from_pretrained` loads (float32 weights), with
    the tokenizer of `vocab_dir` (spiece.model, tokenizer.json, tokenizer_config.json, special tokens)
    so that `AutoTokenizer.from_pretrained` loads it too. `vocab_sha256`: the run's vocabulary, checked
    against `vocab_dir`'s."""
    from c4clean.tokenize.hf_tokenizer import write_tokenizer_files
    from c4clean.tokenize.vocab import MODEL_FILE, check_vocab_dir

    info = check_vocab_dir(vocab_dir, vocab_sha256) if vocab_dir is not None else None
    if info is not None and info.vocab_size > model.cfg.vocab_size:
        raise ValueError(
            f"{vocab_dir} has {info.vocab_size} ids, more than the model's {model.cfg.vocab_size} rows"
        )
    sd = {k: v.float().cpu() for k, v in to_hf_state_dict(model).items()}
    with replacing_dir(out_dir) as tmp:
        save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(hf_config(model.cfg), indent=2) + "\n")
        if info is not None:
            shutil.copyfile(Path(vocab_dir) / MODEL_FILE, tmp / MODEL_FILE)
            write_tokenizer_files(tmp / MODEL_FILE, tmp, info.extra_ids)
    return Path(out_dir)


def config_from_hf(d: dict) -> T5Config:
    if d.get("model_type") != "t5":
        raise ValueError(f"model_type is {d.get('model_type')!r}, expected 't5'")
    # transformers 4.x marks v1.1 with tie_word_embeddings false; 5.x saves tie_word_embeddings true
    # with scale_decoder_outputs false (and the untied lm_head.weight in the file)
    scaled = d.get("scale_decoder_outputs", d.get("tie_word_embeddings", True) is not False)
    if d.get("feed_forward_proj") != "gated-gelu" or scaled:
        raise ValueError(
            "only the T5 v1.1 layout is supported (feed_forward_proj 'gated-gelu', untied lm_head "
            "without output scaling: tie_word_embeddings false / scale_decoder_outputs false)"
        )
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
