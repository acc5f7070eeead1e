"""T5 v1.1 model: shapes, parameter counts, the v1.1 architecture details that are easy to get wrong."""

import math

import pytest
import torch
import torch.nn.functional as F

from c4clean.train.model import (
    PRESETS,
    T5,
    RMSNorm,
    count_parameters,
    preset,
    relative_position_bucket,
    train_flops_per_example,
)

# Published / reference counts (t5-trainer.md §2.2, vocabulary 32,128 rows; v1.1-base also equals
# nanoT5's "# N-params: 247577856").
REFERENCE_COUNTS = {"t5-v1_1-small": 76_961_152, "t5-v1_1-base": 247_577_856, "t5-v1_1-large": 783_150_080}


@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_parameter_counts_equal_published(name):
    cfg = preset(name)
    assert count_parameters(cfg) == REFERENCE_COUNTS[name]
    with torch.device("meta"):  # the real module, without allocating 3 GB
        assert T5(cfg).num_parameters() == REFERENCE_COUNTS[name]


def test_tiny_preset_module_count_matches_closed_form():
    cfg = preset("t5-v1_1-tiny", vocab_size=512)
    assert T5(cfg).num_parameters() == count_parameters(cfg)
    assert set(PRESETS) == {"t5-v1_1-tiny", "t5-v1_1-small", "t5-v1_1-base", "t5-v1_1-large"}


def test_flops_per_example_matches_reference_estimate():
    # t5-trainer.md §4.1/4.5: v1.1-base at 512/114 = 389.1 (matmul) + 36.9 (attention) = 425.9 GFLOP
    assert train_flops_per_example(preset("t5-v1_1-base"), 512, 114) / 1e9 == pytest.approx(425.9, abs=0.1)
    assert train_flops_per_example(preset("t5-v1_1-small"), 512, 114) / 1e9 == pytest.approx(106.3, abs=0.1)


@pytest.mark.parametrize(
    "rp,bidirectional,expected",
    [
        # bidirectional: 16 buckets per sign, 8 exact, log-spaced up to 128; later keys get +16
        (0, True, 0),
        (-1, True, 1),
        (1, True, 17),
        (-7, True, 7),
        (-8, True, 8),
        (-16, True, 10),  # 8 + log(16/8)/log(128/8) * 8 = 10
        (-128, True, 15),
        (-1000, True, 15),
        (1000, True, 31),
        # causal: 32 buckets for earlier keys, 16 exact; later keys all share bucket 0
        (5, False, 0),
        (-15, False, 15),
        (-16, False, 16),
        (-32, False, 21),  # 16 + log(2)/log(8) * 16 = 21.33
        (-127, False, 31),
        (-5000, False, 31),
    ],
)
def test_relative_position_bucket(rp, bidirectional, expected):
    got = relative_position_bucket(
        torch.tensor([rp]), bidirectional=bidirectional, num_buckets=32, max_distance=128
    )
    assert got.item() == expected


def test_rmsnorm_is_scale_only_and_float32():
    norm = RMSNorm(64, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
    x = torch.randn(3, 64) * 5 + 100.0  # large mean: a LayerNorm would subtract it, RMSNorm must not
    x16 = x.bfloat16()
    ref = x16.double() / x16.double().pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * norm.weight.double()
    out = norm(x16)
    assert out.dtype == torch.float32  # computed (and returned) in float32 for float32 weights
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def _tiny(**kw):
    torch.manual_seed(0)
    return T5(preset("t5-v1_1-tiny", vocab_size=256, **kw))


def test_attention_is_unscaled_sdpa(monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs.get("scale"))
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    model = _tiny()
    model(torch.randint(2, 256, (2, 12)), labels=torch.randint(2, 256, (2, 5)))
    # encoder self (2 layers) + decoder self and cross (2 layers each), all with scale 1.0
    assert calls == [1.0] * 6


TRUNCATED = 0.8796  # std of a normal truncated at 2 std, relative to the untruncated one


@pytest.mark.parametrize("style", ["mesh_tf", "hf"])
def test_init_follows_mesh_tf_or_hf(style):
    model = T5(preset("t5-v1_1-small", vocab_size=512), init_style=style)
    c, inner = model.cfg, model.cfg.inner_dim
    layer = model.encoder.layers[0]
    qkv = layer.attn.qkv.weight
    mesh = style == "mesh_tf"
    dense = TRUNCATED if mesh else 1.0  # Mesh TF's dense default is a truncated normal
    expected = [
        (qkv[:inner], (c.d_model * c.d_kv) ** -0.5),
        (qkv[inner:], c.d_model**-0.5),
        (layer.attn.o.weight, inner**-0.5),
        (layer.ffn.wi.weight, dense * c.d_model**-0.5),
        (layer.ffn.wo.weight, dense * c.d_ff**-0.5),
        (model.shared.weight, 1.0),
        (model.lm_head.weight, TRUNCATED * c.d_model**-0.5 if mesh else 1.0),
        (model.decoder.layers[0].cross_attn.q.weight, (c.d_model * c.d_kv) ** -0.5),
    ]
    for w, std in expected:
        assert w.std().item() == pytest.approx(std, rel=0.03)
    if mesh:
        bias = model.encoder.relative_attention_bias.weight
        bound = (6 / (c.num_heads + c.relative_attention_num_buckets)) ** 0.5
        assert bias.abs().max() <= bound and bias.std().item() == pytest.approx(bound / 3**0.5, rel=0.2)
        assert model.lm_head.weight.abs().max() <= 2 * c.d_model**-0.5


def test_initial_loss_is_near_ln_vocab_with_mesh_tf_init():
    torch.manual_seed(0)
    cfg = preset("t5-v1_1-tiny", vocab_size=32128)
    ids, labels = torch.randint(2, 32000, (4, 32)), torch.randint(2, 32000, (4, 8))
    with torch.no_grad():
        mesh = T5(cfg)(ids, labels=labels)["loss"].item()
        hf = T5(cfg, init_style="hf")(ids, labels=labels)["loss"].item()
    assert mesh == pytest.approx(math.log(32128), abs=0.5)  # 10.38
    assert hf > 3 * math.log(32128)  # std-1 lm_head: logits of std ~sqrt(d_model)
    with pytest.raises(ValueError, match="unknown init style"):
        T5(cfg, init_style="xavier")


def test_z_loss_is_mesh_tf_term_beside_the_cross_entropy():
    model = _tiny().eval()
    ids, labels = torch.randint(2, 256, (2, 10)), torch.randint(2, 256, (2, 5))
    labels[1, 3:] = -100
    plain = model(ids, labels=labels)
    out = model(ids, labels=labels, z_loss=1e-4)
    assert "z_loss" not in plain
    assert out["loss"].item() == pytest.approx(plain["loss"].item(), rel=1e-5)  # the logged loss
    keep = labels != -100
    log_z = out["logits"][keep].float().logsumexp(-1)
    assert out["z_loss"].item() == pytest.approx(1e-4 * log_z.square().mean().item(), rel=1e-5)
    (out["loss"] + out["z_loss"]).backward()


def test_untied_embedding_and_head_and_shared_position_bias():
    model = _tiny()
    assert model.lm_head.weight is not model.shared.weight
    assert not torch.equal(model.lm_head.weight, model.shared.weight)
    # one bias table per stack, none in the layers (shared by every layer), none for cross-attention
    tables = [n for n, _ in model.named_parameters() if "relative_attention_bias" in n]
    assert tables == ["encoder.relative_attention_bias.weight", "decoder.relative_attention_bias.weight"]
    ids, labels = torch.randint(2, 256, (2, 10)), torch.randint(2, 256, (2, 4))
    model(ids, labels=labels)["loss"].backward()
    assert model.lm_head.weight.grad.abs().sum() > 0 and model.shared.weight.grad.abs().sum() > 0
    assert model.encoder.relative_attention_bias.weight.grad.abs().sum() > 0


def test_no_dropout_by_default_and_deterministic_in_train_mode():
    model = _tiny().train()
    ids, labels = torch.randint(2, 256, (2, 10)), torch.randint(2, 256, (2, 4))
    assert torch.equal(model(ids, labels=labels)["logits"], model(ids, labels=labels)["logits"])


def test_decoder_is_causal_and_encoder_padding_is_ignored():
    model = _tiny().eval()
    ids = torch.randint(2, 256, (1, 10))
    dec = torch.randint(2, 256, (1, 6))
    base = model(ids, decoder_input_ids=dec)["logits"]
    changed = dec.clone()
    changed[0, 4:] = 7
    out = model(ids, decoder_input_ids=changed)["logits"]
    torch.testing.assert_close(out[:, :4], base[:, :4])
    assert not torch.allclose(out[:, 4:], base[:, 4:])
    # padded encoder positions do not influence the result when masked
    mask = torch.ones(1, 10, dtype=torch.long)
    mask[0, 7:] = 0
    a = model(ids, decoder_input_ids=dec, attention_mask=mask)["logits"]
    other = ids.clone()
    other[0, 7:] = 3
    b = model(other, decoder_input_ids=dec, attention_mask=mask)["logits"]
    torch.testing.assert_close(a, b)


def test_loss_is_token_mean_cross_entropy_with_ignore_index():
    model = _tiny().eval()
    ids, labels = torch.randint(2, 256, (2, 10)), torch.randint(2, 256, (2, 5))
    labels[1, 3:] = -100
    out = model(ids, labels=labels)
    logp = out["logits"].log_softmax(-1)
    keep = labels != -100
    manual = -logp[keep].gather(-1, labels[keep][:, None]).mean()
    assert out["loss"].item() == pytest.approx(manual.item(), rel=1e-5)
    assert math.isfinite(out["loss"].item())


def test_bf16_autocast_forward_backward_on_cpu():
    model = _tiny()
    ids, labels = torch.randint(2, 256, (2, 10)), torch.randint(2, 256, (2, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, labels=labels)
    assert out["logits"].dtype == torch.bfloat16 and out["loss"].dtype == torch.float32
    out["loss"].backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_flex_attention_gives_the_sdpa_function():
    """`attention="flex"` adds the position bias, the causal mask and the key padding inside the kernel:
    same logits as the dense SDPA mask, with padding in both stacks (forward only: FlexAttention has no
    CPU backward; the gradients are compared on CUDA in tests/test_train_gpu.py)."""
    model = _tiny().eval()
    ids, dec = torch.randint(2, 256, (2, 12)), torch.randint(2, 256, (2, 7))
    mask, dec_mask = torch.ones(2, 12, dtype=torch.long), torch.ones(2, 7, dtype=torch.long)
    mask[1, 8:], dec_mask[0, 5:] = 0, 0
    kw = {"decoder_input_ids": dec, "attention_mask": mask, "decoder_attention_mask": dec_mask}
    for masks in (kw, {"decoder_input_ids": dec}):  # key padding given, or only the blocks' padding
        with torch.no_grad():
            dense = model.use_attention("sdpa")(ids, **masks)["logits"]
            flex = model.use_attention("flex")(ids, **masks)["logits"]
        torch.testing.assert_close(flex, dense, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unknown attention"):
        model.use_attention("flash")
    with pytest.raises(ValueError, match="no attention dropout"):
        T5(preset("t5-v1_1-tiny", vocab_size=256, dropout_rate=0.1), attention="flex")
