# subspace_heatmap.gp: paper-style heatmaps of the normalized subspace similarity
# φ(i, j) written by lora-subspace (Hu et al. 2021, Figures 3, 4, 6, 7, 8): the full
# i × j grid, its zoomed lower-left triangle (i, j ≤ min(r1, r2)), and optionally
# the grid of a random Gaussian pair of the same shapes. Colour scale fixed to 0..1.
#
# `lora-subspace --plot DIR` copies this file into DIR and writes, per (layer,
# target), a data file and a small script that sets the variables below and loads
# this one. Edit DIR/subspace_heatmap.gp to restyle every plot, then re-render:
#     cd DIR && gnuplot L0_q.gp            (one plot)
#     cd DIR && gnuplot all.gp             (every plot)
# It also runs on its own:
#     gnuplot -e "datafile='phi.dat'; r1=8; r2=64; outfile='phi.png'" subspace_heatmap.gp
#
# Variables:
#   datafile    φ grid: r1 lines (i = 1..r1) of r2 numbers (j = 1..r2)
#   r1, r2      the grid's size
#   outfile     the PNG to write
#   randomfile  φ grid of a random Gaussian pair (same shape), or '' for none
#   maintitle   figure title; label1, label2: the inputs behind axes i and j
#
# src/subspace_heatmap.c embeds this file (regenerate it with the command written
# there); tests/cli_subspace.sh fails if the two differ.

if (!exists("randomfile")) randomfile = ''
if (!exists("maintitle")) maintitle = datafile
if (!exists("label1")) label1 = 'input 1'
if (!exists("label2")) label2 = 'input 2'

reset
set encoding utf8
cairo = strstrt(GPVAL_TERMINALS, 'pngcairo') > 0
phi = cairo ? 'φ' : 'phi'
le = cairo ? '≤' : '<='
npanel = (strlen(randomfile) > 0) ? 3 : 2
if (cairo) {
    set terminal pngcairo size 480*npanel + 40, 500 font 'Sans,10' noenhanced
} else {
    set terminal png size 480*npanel + 40, 500 noenhanced
}
set output outfile

# a viridis-like map: dark for 0, yellow for 1
set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')
set cbrange [0:1]
set cbtics 0.2
set tics out nomirror
set xlabel sprintf('j   (%s)', label2)
set ylabel sprintf('i   (%s)', label1)
rz = (r1 < r2) ? r1 : r2
tic(r) = (r <= 16) ? 1 : (r <= 32) ? 4 : (r <= 64) ? 8 : ceil(r / 80.0) * 10

set multiplot layout 1, npanel title maintitle font ',12'

# i grows downwards, as in the paper
set title sprintf('%s(i, j), i %s %d, j %s %d', phi, le, r1, le, r2)
set xrange [0.5 : r2 + 0.5]
set yrange [r1 + 0.5 : 0.5]
set xtics tic(r2)
set ytics tic(r1)
set xtics add ('1' 1)
set ytics add ('1' 1)
plot datafile matrix using ($1 + 1):($2 + 1):3 with image notitle

set title sprintf('zoom: lower-left triangle, i, j %s %d', le, rz)
set xrange [0.5 : rz + 0.5]
set yrange [rz + 0.5 : 0.5]
set xtics tic(rz)
set ytics tic(rz)
plot datafile matrix using ($1 + 1):($2 + 1):(($1 <= $2) ? $3 : NaN) with image notitle

if (strlen(randomfile) > 0) {
    set title sprintf('random Gaussian pair, %s(i, j)', phi)
    set xlabel 'j   (random)'
    set ylabel 'i   (random)'
    set xrange [0.5 : r2 + 0.5]
    set yrange [r1 + 0.5 : 0.5]
    set xtics tic(r2)
    set ytics tic(r1)
    set xtics add ('1' 1)
    set ytics add ('1' 1)
    plot randomfile matrix using ($1 + 1):($2 + 1):3 with image notitle
}
unset multiplot
set output
