"""Stage 4a: Wanda set-difference masks for one source -> ``results/masks/neurons/{variant}/{source}.npz``.

For each linear module of each decoder layer: score_ij = |W_ij| * ||X_j||_2 with the
norms of the White prompts and of the Black prompts of the source's contexts (summed
from the activation cache, never recomputed); mask "black" = top p_black% of the Black
scores minus top p_white% of the White scores; "white" the reverse. Only masks are
written, never dense score matrices.
"""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821

import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from workflow_scripts.architecture import MODULES, check_architecture, linear
from workflow_scripts.errors import ConfigError
from workflow_scripts.scoring import set_difference_mask

VARIANT = re.compile(r"^(?P<direction>black|white)_b(?P<pb>[0-9.]+)_w(?P<pw>[0-9.]+)_(?P<sel>global|row)$")


def neuron_variant(direction: str, p_black: float, p_white: float, selection: str) -> str:
    """The directory name of one mask setting, e.g. ``black_b15_w15_global``."""
    return f"{direction}_b{p_black:g}_w{p_white:g}_{selection}"


def parse_variant(name: str) -> dict[str, Any]:
    m = VARIANT.match(name)
    if not m:
        raise ValueError(f"not a neuron mask variant: {name!r}")
    return {"direction": m["direction"], "p_black": float(m["pb"]), "p_white": float(m["pw"]),
            "selection": m["sel"]}


def add_sumsq(out: dict[str, dict[tuple[int, str], torch.Tensor]], df: Any) -> None:
    """Add the ``sumsq`` of activation-cache rows (a data frame) to per-race running sums."""
    for (race, layer, site), g in df.groupby(["race", "layer", "site"], sort=False):
        s = torch.from_numpy(np.stack(g["sumsq"].to_numpy()).astype(np.float64).sum(0))
        acc = out.setdefault(race, {})
        key = (int(layer), site)
        acc[key] = acc[key] + s if key in acc else s


def group_sumsq(paths: Iterable[str | Path], keep: Callable[[Any], Any] | None = None
                ) -> dict[str, dict[tuple[int, str], torch.Tensor]]:
    """Sum ``sumsq`` per race and (layer, site) over cached prompts, streaming row groups.

    ``keep(batch_df) -> bool array`` selects prompts (e.g. a name split); default all.
    Memory stays at one row group plus the running sums.
    """
    out: dict[str, dict[tuple[int, str], torch.Tensor]] = {"white": {}, "black": {}}
    for path in paths:
        try:
            pf = pq.ParquetFile(path)
            batches = pf.iter_batches(columns=["row", "race", "name", "sample", "layer", "site", "sumsq"])
            for batch in batches:
                df = batch.to_pandas()
                if keep is not None:
                    df = df[np.asarray(keep(df), dtype=bool)]
                add_sumsq(out, df)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(str(path), f"not a readable activation cache ({exc.__class__.__name__}: {exc})",
                              "delete it and rerun snakemake so cache_activations runs again") from exc
    for race in ("white", "black"):
        if not out.get(race):
            raise ConfigError(", ".join(map(str, paths)), f"no cached prompts with race '{race}'",
                              "check the names file and the prompt subset")
    return out


def names_filter(names: list[str] | None) -> Callable[[Any], Any] | None:
    """A ``keep`` for ``group_sumsq`` that keeps only the prompts of ``names`` (None: all)."""
    if names is None:
        return None
    allowed = set(names)
    return lambda df: df["name"].isin(allowed).to_numpy()


def neuron_masks(model: Any, sums: dict[str, dict[tuple[int, str], torch.Tensor]],
                 variants: list[dict[str, Any]]) -> list[dict[str, np.ndarray]]:
    """One {``layers.L.module``: bool mask} dict per variant; norms are shared across variants."""
    geo = check_architecture(model)
    out: list[dict[str, np.ndarray]] = [{} for _ in variants]
    for layer in range(geo.n_layers):
        for module, (_, site) in MODULES.items():
            w = linear(model, layer, module).weight.detach()
            sw, sb = sums["white"][(layer, site)].to(w.device), sums["black"][(layer, site)].to(w.device)
            if sw.numel() != w.shape[1]:
                raise ConfigError(f"layer {layer} {module}", f"cache has {sw.numel()} channels, weight has {w.shape[1]}",
                                  "the activation cache was made with another model: delete results/activations")
            for i, v in enumerate(variants):
                per_row = v["selection"] == "row"
                if v["direction"] == "black":
                    m = set_difference_mask(w, sb, sw, v["p_black"], v["p_white"], per_row)
                else:
                    m = set_difference_mask(w, sw, sb, v["p_white"], v["p_black"], per_row)
                out[i][f"layers.{layer}.{module}"] = m.cpu().numpy()
    return out


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    import json
    import time

    from workflow_scripts.logs import setup_logging
    from workflow_scripts.masks import write_mask
    from workflow_scripts.modeling import IDENTITY_FILE, load_model

    log = setup_logging(smk.log[0], "prunebias.score_neurons")
    t0 = time.perf_counter()
    sums = group_sumsq(smk.input.activations, names_filter(smk.params.learn_names))
    model, _ = load_model(smk.input.model, "float32", smk.params.device, smk.threads)
    identity = json.loads((Path(smk.input.model) / IDENTITY_FILE).read_text())
    variants = [parse_variant(Path(p).parent.name) for p in smk.output]
    masks = neuron_masks(model, sums, variants)
    for path, v, arrays in zip(smk.output, variants, masks):
        meta = {"model": identity, "method": {"name": "neurons", **v}, "source": smk.wildcards.source,
                "sources": list(smk.params.contexts), "combine": smk.params.combine,
                "learn_names": smk.params.learn_names}
        write_mask(path, "neurons", meta, arrays)
        n = sum(int(a.sum()) for a in arrays.values())
        tot = sum(a.size for a in arrays.values())
        log.info("%s %s: %d of %d weights (%.3f%%)", smk.wildcards.source, Path(path).parent.name, n, tot,
                 100 * n / tot)
    log.info("scored %d variants in %.1f s", len(variants), time.perf_counter() - t0)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
