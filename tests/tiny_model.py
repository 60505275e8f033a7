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
