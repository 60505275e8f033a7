"""A tiny random Llama + a tokenizer trained locally, so workflow tests run in seconds.

Nothing is downloaded: the tokenizer is a byte-level BPE trained on our own templates
and names, the model a 2-layer LlamaForCausalLM with grouped-query attention (4 query
heads, 2 kv heads). Its output head is tilted towards digit tokens so that random
answers are often numbers (the workflow then has real values to analyse).
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] }}"
    "{% if not loop.last or message['role'] != 'assistant' %}{{ '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer(corpus: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<pad>", unk_token="<|endoftext|>")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def corpus() -> list[str]:
    import csv

    import yaml

    root = Path(__file__).resolve().parents[1]
    texts = []
    scen = yaml.safe_load((root / "data" / "scenarios.yaml").read_text())
    for s in scen.values():
        texts.extend(s["templates"].values())
        texts.append(s.get("answer_prefix", ""))
        for v in s["variations"].values():
            texts.extend(str(x) for x in v.values())
    for f in (root / "data" / "names").glob("*.csv"):
        with f.open() as fh:
            texts.extend(" ".join([r["first_name"], r["surname"]]) for r in csv.DictReader(fh))
    texts.extend(["0123456789", "$1,200.50", "1.5 million", "user assistant system"])
    return texts


def build_tiny_model(out_dir: Path, seed: int = 0, digit_tilt: float = 6.0) -> Path:
    """Save a tiny tokenizer + random Llama to ``out_dir`` (a Hugging Face model dir)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer(corpus())
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        w = model.lm_head.weight
        w.mul_(0.05)
        digits = [tok.convert_tokens_to_ids(str(d)) for d in range(10)]
        w[digits] = torch.randn(len(digits), w.shape[1]) * digit_tilt / w.shape[1] ** 0.5
        w[tok.eos_token_id] = torch.randn(w.shape[1]) * 0.5 * digit_tilt / w.shape[1] ** 0.5
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return out_dir


def build_planted_model(out_dir: Path, strength: float = 20.0) -> Path:
    """A tiny Llama whose answer depends on race through a few known weights.

    Residual dim 31 is set only by the tokens of the Black names' surname "Washington"
    (embedding). Layer 0 moves it to the answer position through one value channel
    (v_proj row 0 reads dim 31) and one output column (o_proj[31, 0]); the output head
    reads dim 31 to favour the digits 2/3, while a constant dim 30 favours 7/8. So Black
    names get 2 or 3, White names 7 or 8 — unless the pathway is pruned. Digits carry dim
    29, which makes the next token the end of the answer. Returns ``out_dir``; the
    planted weights are listed in ``PLANTED``.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer(corpus())
    torch.manual_seed(1)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, initializer_range=0.02)
    model = LlamaForCausalLM(cfg).eval()
    wash = set(tok("Washington", add_special_tokens=False).input_ids) | set(
        tok(" Washington", add_special_tokens=False).input_ids)
    becker = set(tok("Jake Becker buys a car. $", add_special_tokens=False).input_ids)
    assert not wash & becker, "surname tokens must not occur in White prompts"
    digit = {d: tok.convert_tokens_to_ids(str(d)) for d in range(10)}
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:, 29:] = 0.0
        emb[:, 30] = 0.3  # constant: favours 7/8
        for t in wash:
            emb[t, 31] = 1.0  # the race signal
        for d in (2, 3, 7, 8):
            emb[digit[d], 29] = 1.0  # "an answer digit was just written"
        for layer in model.model.layers:  # nothing but the planted path writes dims 29-31
            layer.self_attn.o_proj.weight[29:] = 0.0
            layer.mlp.down_proj.weight[29:] = 0.0
        attn0 = model.model.layers[0].self_attn
        attn0.v_proj.weight[0] = 0.0
        attn0.v_proj.weight[0, 31] = 1.0
        attn0.o_proj.weight[31, 0] = strength
        head = model.lm_head.weight
        head.normal_(0.0, 0.01)
        head[:, 29:] = 0.0
        for d in (2, 3):
            head[digit[d], 31] = 4.0
        for d in (7, 8):
            head[digit[d], 30] = 1.0
        head[tok.eos_token_id, 29] = 12.0
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return out_dir


PLANTED = [("layers.0.v_proj", 0, 31), ("layers.0.o_proj", 31, 0)]


def build_text_only_model(out_dir: Path) -> Path:
    """A tiny Llama that never writes a digit (a constant dimension pushes digits down)."""
    import torch
    from transformers import LlamaForCausalLM

    build_tiny_model(out_dir, seed=2, digit_tilt=0.0)
    model = LlamaForCausalLM.from_pretrained(out_dir)
    tok_dir = out_dir
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 31] = 1.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[31] = 0.0
            layer.mlp.down_proj.weight[31] = 0.0
        digits = [i for t, i in tok.get_vocab().items() if any(c.isdigit() for c in t)]
        model.lm_head.weight[digits, 31] = -50.0
        model.lm_head.weight[tok.eos_token_id, 31] = -50.0  # answers are text, not empty
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir
