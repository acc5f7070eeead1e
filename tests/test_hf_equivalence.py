"""The c4clean T5 equals Hugging Face's T5ForConditionalGeneration (v1.1) on the same weights."""

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from c4clean.train.hf_export import export_hf, import_hf  # noqa: E402
from c4clean.train.model import T5, preset  # noqa: E402

VOCAB = 384


def _perturbed_tiny() -> T5:
    """Tiny v1.1 model with non-trivial norm weights (all-ones norms would hide a missing scale)."""
    torch.manual_seed(0)
    model = T5(preset("t5-v1_1-tiny", vocab_size=VOCAB))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model.eval()


def _load_hf(path):
    hf = transformers.T5ForConditionalGeneration.from_pretrained(str(path)).eval()
    # v1.1 layout: untied lm_head, shared input embedding, no d_model**-0.5 output scaling
    assert hf.lm_head.weight is not hf.shared.weight
    assert hf.encoder.embed_tokens.weight is hf.shared.weight
    assert hf.decoder.embed_tokens.weight is hf.shared.weight
    assert getattr(hf.config, "scale_decoder_outputs", False) is False
    return hf


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, VOCAB, (3, 37), generator=g)
    labels = torch.randint(2, VOCAB, (3, 9), generator=g)
    labels[2, 6:] = -100
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0
    return ids, labels, mask


@pytest.mark.parametrize("use_mask", [False, True])
def test_exported_model_gives_same_logits_and_loss(tmp_path, use_mask):
    model = _perturbed_tiny()
    export_hf(model, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["feed_forward_proj"] == "gated-gelu" and config["tie_word_embeddings"] is False
    hf = _load_hf(tmp_path / "hf")
    assert sum(p.numel() for p in hf.parameters()) == model.num_parameters()
    ids, labels, mask = _batch()
    kwargs = {"attention_mask": mask} if use_mask else {}
    with torch.no_grad():
        ours = model(ids, labels=labels, **kwargs)
        ref = hf(input_ids=ids, labels=labels, **kwargs)
    torch.testing.assert_close(ours["logits"], ref.logits, atol=1e-4, rtol=1e-5)
    assert ours["loss"].item() == pytest.approx(ref.loss.item(), abs=1e-4)


def test_gradients_match(tmp_path):
    model = _perturbed_tiny()
    export_hf(model, tmp_path / "hf")
    hf = _load_hf(tmp_path / "hf")
    ids, labels, _ = _batch()
    model(ids, labels=labels)["loss"].backward()
    hf(input_ids=ids, labels=labels).loss.backward()
    torch.testing.assert_close(model.lm_head.weight.grad, hf.lm_head.weight.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        model.encoder.relative_attention_bias.weight.grad,
        hf.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.grad,
        atol=1e-5,
        rtol=1e-4,
    )
    q_ours = model.decoder.layers[1].cross_attn.q.weight.grad
    torch.testing.assert_close(
        q_ours, hf.decoder.block[1].layer[1].EncDecAttention.q.weight.grad, atol=1e-5, rtol=1e-4
    )


def test_import_of_a_hugging_face_saved_checkpoint(tmp_path):
    """Weights changed and saved by transformers itself come back into c4clean unchanged in function."""
    export_hf(_perturbed_tiny(), tmp_path / "hf")
    hf = _load_hf(tmp_path / "hf")
    torch.manual_seed(5)
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    hf.save_pretrained(str(tmp_path / "saved"), safe_serialization=True)
    ours = import_hf(tmp_path / "saved").eval()
    assert ours.num_parameters() == sum(p.numel() for p in hf.parameters())
    ids, labels, mask = _batch()
    with torch.no_grad():
        torch.testing.assert_close(
            ours(ids, labels=labels, attention_mask=mask)["logits"],
            hf(input_ids=ids, labels=labels, attention_mask=mask).logits,
            atol=1e-4,
            rtol=1e-5,
        )


def test_import_rejects_tied_v1_0_layout_and_pickles(tmp_path):
    export_hf(_perturbed_tiny(), tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    config.update(feed_forward_proj="relu", tie_word_embeddings=True)
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="v1.1"):
        import_hf(tmp_path / "hf")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(FileNotFoundError, match="safetensors"):
        import_hf(tmp_path / "bin")


def test_export_cli_round_trip(tmp_path):
    """`c4clean export RUN --out HF` then `c4clean export --from-hf HF --out DIR` keep the function."""
    from click.testing import CliRunner

    from c4clean.cli import main
    from c4clean.train.checkpoint import load_model_dir, save_model_dir

    model = _perturbed_tiny()
    save_model_dir(model, tmp_path / "run" / "final")
    runner = CliRunner()
    result = runner.invoke(
        main, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "hf"), "--weights-only"]
    )
    assert result.exit_code == 0, result.output
    hf = _load_hf(tmp_path / "hf")
    result = runner.invoke(
        main, ["export", "--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back")]
    )
    assert result.exit_code == 0, result.output
    back = load_model_dir(tmp_path / "back").eval()
    ids, labels, _ = _batch()
    with torch.no_grad():
        ref = hf(input_ids=ids, labels=labels).logits
        torch.testing.assert_close(model(ids, labels=labels)["logits"], ref, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(back(ids, labels=labels)["logits"], ref, atol=1e-4, rtol=1e-5)
    missing = runner.invoke(
        main, ["export", str(tmp_path / "hf_missing_parent"), "--out", str(tmp_path / "x")]
    )
    assert missing.exit_code != 0
