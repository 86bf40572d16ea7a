#!/usr/bin/python3
"""spectrum_tables.py SWEEP.h5 OUTDIR: the tables and plots of docs/RESULTS.md
(LoRA against full fine-tuning) from the per-cell lora-spectrum files
OUTDIR/RUN_ID.h5 that scripts/spectrum-results.sh writes.

Cells are grouped by rank (LoRA, targets q,k,v,o,fc,proj) and full fine-tuning;
each number is a mean over a cell's 24 matrices (4 layers x 6 targets) or over
a target's layers, then mean +- sample std over the seeds present. The final
state of a cell is its last lora-spectrum input; the ΔM-ΔD trend of a cell is
over its snapshots and final state x layers (lora-spectrum's trend/{t}).
Prints Markdown; writes OUTDIR/{spectra,intruders,dmdd}.dat and standalone
gnuplot scripts OUTDIR/{spectra,intruders,dmdd}.gp (run from OUTDIR)."""
import os
import subprocess
import sys

import h5py
import numpy as np

TARGETS = ['q', 'k', 'v', 'o', 'fc', 'proj']
EPS = [0.1 * (i + 1) for i in range(9)]


def ms(v):
    v = [x for x in v if np.isfinite(x)]
    if not v:
        return float('nan'), float('nan'), 0
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else float('nan'), len(v)


def fmt(v, digits=1):
    m, s, n = ms(v)
    if n == 0:
        return '—'
    if n == 1:
        return '%.*f' % (digits, m)
    return '%.*f ± %.*f' % (digits, m, digits, s)


def main():
    sweep, out = sys.argv[1], sys.argv[2]
    sw = h5py.File(sweep, 'r')
    groups = {}   # label -> list of (seed, run)
    for run in sorted(sw['runs']):
        g = sw['runs'][run]
        tg = g.attrs['targets']
        tg = tg.decode() if isinstance(tg, bytes) else tg
        if tg == 'full':
            key = 'full'
        elif tg == 'q,k,v,o,fc,proj':
            key = int(g.attrs['rank'])
        else:
            continue
        if not os.path.exists(os.path.join(out, run + '.h5')):
            continue
        groups.setdefault(key, []).append((int(g.attrs['seed']), run, g))
    keys = sorted([k for k in groups if k != 'full']) + (['full'] if 'full' in groups else [])
    label = lambda k: 'full FT' if k == 'full' else 'r = %d' % k

    acc, k90, k90t, cnt, base_cnt, trend = {}, {}, {}, {}, [], {}
    spectra, dmdd = {}, {}
    for k in keys:
        acc[k], k90[k], cnt[k] = [], [], []
        k90t[k] = {t: [] for t in TARGETS}
        trend[k] = {t: ([], []) for t in TARGETS}
        spectra[k] = {}
        for seed, run, g in sorted(groups[k]):
            acc[k].append((g.attrs['test_metric'], g.attrs['val_metric']))
            s = h5py.File(os.path.join(out, run + '.h5'), 'r')
            n_in = int(s.attrs['inputs'])
            fin = s['input%d' % (n_in - 1)] if n_in > 1 else s
            vals, counts = [], []
            for i in range(int(s.attrs['n_layer'])):
                for t in TARGETS:
                    m = fin['layers/%d/%s' % (i, t)]
                    vals.append(m.attrs['k90'])
                    k90t[k][t].append(m.attrs['k90'])
                    counts.append(np.array(m['intruder_counts']))
                    sv = np.array(m['sv'])
                    spectra[k].setdefault(t, []).append(sv / 1.0)
                    if len(base_cnt) < 24 and k == keys[0] and seed == sorted(groups[k])[0][0]:
                        base_cnt.append(np.array(m['intruder_baseline_counts']))
                    for a in range(n_in):
                        src = s['input%d' % a] if n_in > 1 else s
                        mm = src['layers/%d/%s' % (i, t)]
                        dmdd.setdefault((k, t), []).append((seed, a, i, mm.attrs['delta_d'], mm.attrs['delta_m']))
            k90[k].append(np.mean(vals))
            cnt[k].append(np.mean(counts, axis=0))
            if 'trend' in s:
                for t in TARGETS:
                    tr = s['trend/%s' % t].attrs
                    trend[k][t][0].append(tr['slope'])
                    trend[k][t][1].append(tr['pearson_r'])
    seeds_of = lambda k: ', '.join(str(x[0]) for x in sorted(groups[k]))

    print('\n#### Cells\n')
    # the task's metric: accuracy (sentiment) in %, loss (wikisql: nats per byte) as is
    metric = str(groups[keys[0]][0][2].attrs.get('metric', 'accuracy'))
    if isinstance(groups[keys[0]][0][2].attrs.get('metric'), bytes):
        metric = groups[keys[0]][0][2].attrs['metric'].decode()
    scale, unit, dig = (100, ' (%)', 1) if metric == 'accuracy' else (1, '', 3)
    print('| | seeds | test %s%s | validation %s%s |' % (metric, unit, metric, unit))
    print('|---|---|---:|---:|')
    for k in keys:
        print('| %s | %s | %s | %s |' % (label(k), seeds_of(k), fmt([scale * a[0] for a in acc[k]], dig),
                                          fmt([scale * a[1] for a in acc[k]], dig)))

    print('\n#### Energy rank k90 of ΔW (mean over layers; mean ± std over seeds)\n')
    print('| | all 24 matrices | ' + ' | '.join(TARGETS) + ' |')
    print('|---|---:|' + '---:|' * len(TARGETS))
    for k in keys:
        print('| %s | %s | ' % (label(k), fmt(k90[k])) + ' | '.join(
            fmt([np.mean(v) for v in np.array_split(np.array(k90t[k][t], float), len(groups[k]))]) for t in TARGETS) + ' |')
    if 'full' in keys:
        f90 = ms(k90['full'])[0]
        print('\nfull fine-tuning\'s k90 over LoRA\'s rank: ' +
              ', '.join('%.1f× r = %d' % (f90 / k, k) for k in keys if k != 'full'))

    print('\n#### Intruder dimensions among the top 10 singular vectors of W (output space; mean per matrix over 24 matrices; mean ± std over seeds)\n')
    print('| ε | ' + ' | '.join(label(k) for k in keys) + ' | random unit vectors |')
    print('|---:|' + '---:|' * (len(keys) + 1))
    base = np.mean(base_cnt, axis=0) if base_cnt else np.full(9, np.nan)
    for e in range(9):
        print('| %.1f | ' % EPS[e] + ' | '.join(fmt([c[e] for c in cnt[k]], 2) for k in keys) + ' | %.2f |' % base[e])

    print('\n#### ΔM against ΔD over each cell\'s snapshots × layers: Pearson r (slope) per target, mean ± std over seeds\n')
    print('| | ' + ' | '.join(TARGETS) + ' |')
    print('|---|' + '---:|' * len(TARGETS))
    for k in keys:
        row = []
        for t in TARGETS:
            sl, r = trend[k][t]
            row.append('%s (%s)' % (fmt(r, 2), fmt(sl, 3)) if r else '—')
        print('| %s | ' % label(k) + ' | '.join(row) + ' |')

    # ---- plot data and standalone gnuplot scripts ----
    with open(os.path.join(out, 'spectra.dat'), 'w') as f:
        f.write('# σ_i(ΔW) / σ_1(ΔW), mean over layers and seeds; one block per target (index), columns: i, then %s\n'
                % ', '.join(label(k) for k in keys))
        for bi, t in enumerate(TARGETS):
            f.write('%s# %s\n' % ('\n\n' if bi else '', t))
            n = max(len(spectra[k][t][0]) for k in keys)
            for i in range(n):
                row = []
                for k in keys:
                    v = [sv[i] / sv[0] for sv in spectra[k][t] if i < len(sv) and sv[0] > 0 and sv[i] > 0]
                    row.append('%.6g' % np.mean(v) if v else 'NaN')
                f.write('%d %s\n' % (i + 1, ' '.join(row)))
    with open(os.path.join(out, 'spectra.gp'), 'w') as f:
        f.write('# ΔW spectra (normalised by σ_1) against the index, one line per LoRA rank and one for full fine-tuning.\n'
                '# Run from this directory: gnuplot spectra.gp\n')
        f.write("set encoding utf8\nset terminal pngcairo size 1200,720 font 'Sans,10'\nset output 'spectra.png'\n"
                "set datafile missing 'NaN'\nset logscale xy\nset grid\nset key bottom left\nset multiplot layout 2,3\n")
        for bi, t in enumerate(TARGETS):
            f.write("set title 'ΔW of %s (mean over layers and seeds)'\nset xlabel 'index i'\nset ylabel 'σ_i / σ_1'\n" % t)
            f.write('plot ' + ', '.join("'spectra.dat' index %d using 1:%d with linespoints lw 2 pt 7 ps 0.4 title '%s'" % (bi, 2 + j, label(k))
                                        for j, k in enumerate(keys)) + '\n')
        f.write('unset multiplot\n')
    with open(os.path.join(out, 'intruders.dat'), 'w') as f:
        f.write('# ε, then per group (%s) mean and std over seeds of the intruder count per matrix, then the random baseline\n'
                % ', '.join(label(k) for k in keys))
        for e in range(9):
            row = []
            for k in keys:
                m, s, _ = ms([c[e] for c in cnt[k]])
                row += ['%.6g' % m, '%.6g' % (s if np.isfinite(s) else 0)]
            f.write('%.1f %s %.6g\n' % (EPS[e], ' '.join(row), base[e]))
    with open(os.path.join(out, 'intruders.gp'), 'w') as f:
        f.write('# Intruder dimensions per matrix against ε, one line per LoRA rank and full fine-tuning, and random unit vectors.\n'
                '# Run from this directory: gnuplot intruders.gp\n')
        f.write("set encoding utf8\nset terminal pngcairo size 1000,560 font 'Sans,11'\nset output 'intruders.png'\n"
                "set grid\nset key outside right top\nset yrange [0:10.5]\nset xlabel 'ε'\nset ylabel 'intruders among the top 10 (mean per matrix)'\n"
                "set title 'Intruder dimensions: LoRA ranks and full fine-tuning (mean ± std over seeds)'\nset xrange [0.05:0.95]\n")
        f.write('plot ' + ', \\\n     '.join("'intruders.dat' using 1:%d:%d with yerrorlines lw 2 pt 7 title '%s'"
                                             % (2 + 2 * j, 3 + 2 * j, label(k)) for j, k in enumerate(keys)) +
                ", \\\n     'intruders.dat' using 1:%d with lines lw 2 dt 2 lc rgb 'black' title 'random unit vectors'\n"
                % (2 + 2 * len(keys)))
    with open(os.path.join(out, 'dmdd.dat'), 'w') as f:
        f.write('# ΔD ΔM per (cell, snapshot, layer); one block per (group, target) in the order of dmdd.gp: seed input layer ΔD ΔM\n')
        blocks = []
        for t in TARGETS:
            for k in keys:
                blocks.append((t, k))
                f.write('\n\n# %s %s\n' % (label(k), t) if len(blocks) > 1 else '# %s %s\n' % (label(k), t))
                for seed, a, i, dd, dm in dmdd.get((k, t), []):
                    f.write('%d %d %d %.6g %.6g\n' % (seed, a, i, dd, dm))
    with open(os.path.join(out, 'dmdd.gp'), 'w') as f:
        f.write('# ΔM against ΔD (DoRA, Figure 2): one point per snapshot and layer of every cell, per target.\n'
                '# Run from this directory: gnuplot dmdd.gp\n')
        f.write("set encoding utf8\nset terminal pngcairo size 1200,720 font 'Sans,10'\nset output 'dmdd.png'\n"
                "set grid\nset key top left\nset logscale xy\nset multiplot layout 2,3\n")
        for ti, t in enumerate(TARGETS):
            f.write("set title 'ΔM against ΔD, %s'\nset xlabel 'ΔD'\nset ylabel 'ΔM'\n" % t)
            f.write('plot ' + ', '.join("'dmdd.dat' index %d using 4:5 with points pt 7 ps 0.6 title '%s'"
                                        % (ti * len(keys) + j, label(k)) for j, k in enumerate(keys)) + '\n')
        f.write('unset multiplot\n')
    for gp in ('spectra.gp', 'intruders.gp', 'dmdd.gp'):
        try:
            subprocess.run(['gnuplot', gp], cwd=out, check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            print('spectrum_tables: gnuplot %s: %s' % (gp, e), file=sys.stderr)


if __name__ == '__main__':
    main()
