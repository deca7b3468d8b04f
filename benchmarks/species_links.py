"""Issue 10, 1 V: the inner links re-extracted on co-ion-aware node potentials.

From the 1 V, 6-sheet, hp1000 snapshot run (``coion_diagnosis.snapshot_run``: c+, c- at every output
time) the per-region cation / anion contents give each node's charge q and slit cations p; the
model's own ``SaltLadder(coions="dynamic").ion_potentials(q, p)`` gives the species potentials, and
each link's driving voltage is what that model's link law uses (``link_share="min"``):
``(1 - t) (u-_i - u-_{i+1}) + t (u+_i - u+_{i+1})``, ``t`` the smaller co-ion share of the two nodes,
so ``J = V_eff / R``. Pseudo node potentials with those differences go through the same
``discovery.prepare`` + ``paper_form_projection`` as ``node_potential_links`` (U_eq node potentials).
``links_from="species"`` (``circuits.species_potential_links``): the saturating paper law fitted to the
same link data over the whole record. The links are swapped into the coions + charged-separator model (nothing fitted to the CV) and the
headline and the four predictions measured. Writes ``benchmarks/results/species_links.json``.

    python benchmarks/species_links.py --runs /work/runs/cache
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

import circuit_models as cm  # noqa: E402
import circuits  # noqa: E402
import discovery  # noqa: E402
import jaxpnp  # noqa: E402
from circuits._salt_extract import node_potential_links  # noqa: E402
from coion_diagnosis import snapshot_run  # noqa: E402
from jaxpnp._geometry import build_grid  # noqa: E402

F = 96485.33212


def contents(ds):
    """Per-region cation / anion contents (mol/m^2, (time, n+1)) of a snapshot run."""
    g = build_grid(cm.electrode(int(ds.sizes["slit"])), cm.GRID_NM)
    h = cm.GRID_NM * 1e-9
    w = g.volume * h * h / ((g.ny - 1) * h)
    cp, cn = ds["c_plus"].values * 1e3, ds["c_minus"].values * 1e3
    mask = g.ion_node & np.isfinite(cp[0])
    cp, cn = np.where(mask, cp, 0.0), np.where(mask, cn, 0.0)
    cells = [(g.region == k) & mask for k in range(g.n_regions)]
    Np = np.stack([np.sum(cp * w * c, (1, 2)) for c in cells], 1)
    Nn = np.stack([np.sum(cn * w * c, (1, 2)) for c in cells], 1)
    return Np, Nn


def species_links(ds, model, share="min"):
    """(R_c, gamma, q_max) per link on the model's species potentials at the run's measured q, p."""
    Np, Nn = contents(ds)
    q = F * (Nn - Np)
    Vr = np.asarray(model.region_volume_m)
    with jaxpnp.float64():
        pots = [tuple(np.asarray(a) for a in model.ion_potentials(q[i], Np[i, 1:])) for i in range(q.shape[0])]
    um, up = np.stack([p[0] for p in pots]), np.stack([p[1] for p in pots])
    cat, an = np.stack([p[2] for p in pots]) / Vr, np.stack([p[3] for p in pots]) / Vr
    s = cat / (cat + an)
    t = np.minimum(s[:, :-1], s[:, 1:]) if share == "min" else \
        (cat[:, :-1] + cat[:, 1:]) / (cat[:, :-1] + cat[:, 1:] + an[:, :-1] + an[:, 1:])
    drive = (1 - t) * (um[:, :-1] - um[:, 1:]) + t * (up[:, :-1] - up[:, 1:])  # = u_i - u_{i+1} of the plain law
    phi = np.asarray(ds["electrode_potential"], float)
    # circuit node potentials V_k = phi - u_k: V_{i+1} - V_i = drive_i
    V = np.concatenate([(phi - um[:, 0])[:, None], (phi - um[:, 0])[:, None] + np.cumsum(drive, 1)], 1)
    prepared = discovery.prepare(ds.assign(node_potential=(("time", "slit"), V)), slits="all",
                                 potential="node_potential")
    n = V.shape[1] - 1
    fits = [discovery.paper_form_projection(prepared, i) for i in range(n)]
    return (np.array([f[0] for f in fits]), np.array([f[1] for f in fits]),
            np.asarray(prepared["charge_scale"].sel(link=list(range(n))), float))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="/work/runs/cache")
    ap.add_argument("--prefix", default="salt1v_")
    ap.add_argument("--out", default="benchmarks/results/species_links.json")
    ap.add_argument("--no-predictions", action="store_true")
    args = ap.parse_args()
    runs = Path(args.runs)
    eqs = {ns: cm.equilibria(runs, ns, args.prefix, (1.0,))[0] for ns in (4, 6, 8)}
    base = cm.mpnp_run(runs, 1.0, cm.HALF_PERIOD_DEBYE, 6)
    snap = snapshot_run(runs)
    Im, times = np.asarray(base["current_density"]), np.asarray(base["time"])
    with jaxpnp.float64():
        model = circuits.from_mpnp(base, kind="salt", equilibrium=eqs[6], coions="dynamic", separator="charged")
    eq6 = eqs[6][0] if isinstance(eqs[6], (list, tuple)) else eqs[6]
    before = node_potential_links(snap, eq6)
    after = species_links(snap, model)
    out = dict(links=dict(model=dict(R_c=np.asarray(model.R_c).tolist(), gamma=np.asarray(model.gamma).tolist(),
                                     q_max=np.asarray(model.q_max).tolist()),
                          u_eq_snapshot_run=dict(zip(("R_c", "gamma", "q_max"), (np.asarray(v).tolist() for v in before))),
                          species=dict(zip(("R_c", "gamma", "q_max"), (np.asarray(v).tolist() for v in after)))),
               cases={})
    print(json.dumps(out["links"], indent=1), flush=True)
    variants = dict(u_eq_links=model)
    Np, Nn = contents(snap)
    runs_ions = snap.assign(slit_cation_content=(("time", "slit"), Np), slit_anion_content=(("time", "slit"), Nn))
    with jaxpnp.float64():
        fitted = circuits.from_mpnp(runs_ions, kind="salt", equilibrium=eqs[6], coions="dynamic", separator="charged",
                                    links_from="species")
    out["links"]["species_saturating_fit"] = dict(R_c=np.asarray(fitted.R_c).tolist(),
                                                  gamma=np.asarray(fitted.gamma).tolist(),
                                                  q_max=np.asarray(fitted.q_max).tolist())
    print(json.dumps(out["links"]["species_saturating_fit"]), flush=True)
    variants["links_from_species"] = fitted
    R_c, gamma, q_max = after
    variants["species_links_inner"] = dataclasses.replace(
        model, R_c=np.concatenate([np.asarray(model.R_c)[:1], R_c[1:]]),
        gamma=np.minimum(np.concatenate([np.asarray(model.gamma)[:1], gamma[1:]]), 0.999),
        q_max=np.concatenate([np.asarray(model.q_max)[:1], q_max[1:]]))
    variants["species_links_all"] = dataclasses.replace(model, R_c=R_c, gamma=np.minimum(gamma, 0.999), q_max=q_max)
    for name, m in variants.items():
        with jaxpnp.float64():
            s = circuits.solve(m, cm.cv_of(base), times=times)
        r = out["cases"][name] = dict(nrmse=cm.nrmse(s.current_density, Im))
        try:
            qv = np.asarray(s.slit_charge)[int(np.argmax(np.asarray(base["electrode_potential"])))]
            r["vertex_slit_charge"] = qv.tolist()
        except Exception:  # noqa: BLE001
            pass
        print(f"{name}: {r['nrmse']:.4f}", flush=True)
        if not args.no_predictions:
            r["predictions"] = cm.predictions(m, runs, 1.0, eqs)
            print("   predictions: " + ", ".join(f"{k} {v.get('nrmse', v.get('error'))}"
                                                 for k, v in r["predictions"].items()), flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
