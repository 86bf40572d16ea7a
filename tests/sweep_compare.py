"""sweep_compare.py A.h5 B.h5: two lora-sweep results files hold the same runs and
baselines with bit-identical datasets and attributes, timings excepted (the
attributes named below, which measure wall-clock time). Prints the first
differences and exits 1 if there are any. Used by the MPI sweep tests."""
import sys
import h5py
import numpy as np

TIMING = {'train_seconds', 'tokens_per_s', 'seconds', 'eval_seconds', 'val_seconds', 'test_seconds'}


def walk(f):
    out = {'/': f}
    f.visititems(lambda name, obj: out.__setitem__(name, obj))
    return out


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == 'f':
        return a.tobytes() == b.tobytes()   # bit for bit, NaN included
    return np.array_equal(a, b)


def main():
    fa, fb = h5py.File(sys.argv[1], 'r'), h5py.File(sys.argv[2], 'r')
    diffs = []
    oa, ob = walk(fa), walk(fb)
    if sorted(oa) != sorted(ob):
        diffs.append('objects differ: only in A %s, only in B %s' % (sorted(set(oa) - set(ob))[:5], sorted(set(ob) - set(oa))[:5]))
    for name in sorted(set(oa) & set(ob)):
        a, b = oa[name], ob[name]
        if isinstance(a, h5py.Dataset) and not same(a[()], b[()]):
            diffs.append('%s: data differs' % name)
        for k in sorted(set(a.attrs) | set(b.attrs)):
            if k in TIMING:
                continue
            if k not in a.attrs or k not in b.attrs:
                diffs.append('%s: attribute %s in one file only' % (name, k))
            elif not same(a.attrs[k], b.attrs[k]):
                diffs.append('%s: attribute %s: %r vs %r' % (name, k, a.attrs[k], b.attrs[k]))
    n_runs = len(fa['runs']) if 'runs' in fa else 0
    if diffs:
        print('\n'.join(diffs[:20]))
        sys.exit(1)
    print('sweep_compare: %d runs, %d objects identical (timings excepted)' % (n_runs, len(oa)))


main()
