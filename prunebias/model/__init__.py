"""The model and its hooks: loading (``modeling``), which modules (``architecture``), the one hook
context manager (``hooks``), caches (``activations``), sampling, answers under masks
(``evaluation``), perplexity, applying a mask (``pruning``), export, memory (``model_size``)."""
