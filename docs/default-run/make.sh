#!/usr/bin/env bash
# Regenerate docs/default-run/: the default training run (the tutorial, --seed 0) and what
# the README quotes from it: its history and pictures, the neighbours of "beautiful", the
# evaluation on the validation subset and on the 25,000 test reviews, and the scores of
# short reviews.  Usage: bash docs/default-run/make.sh TRAIN_DATA LABELLED_DATA
# (TRAIN_DATA: aclImdb_v1.tar.gz or the train archive; LABELLED_DATA: one with test/).
set -euo pipefail
cd "$(dirname "$0")/../.."
train_data=$1 labelled=$2 here=docs/default-run
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python -m embeddings.train --data "$train_data" --device cpu --out "$work/run" > "$here/train.txt"
cp "$work/run/history.json" "$work/run/curves.png" "$work/run/embedding-map.png" "$here/"
python -m embeddings.neighbors --run "$work/run" beautiful -k 10 > "$here/neighbors-beautiful.txt"
python -m embeddings.evaluate --run "$work/run" --data "$train_data" --split validation \
  --json > "$here/evaluate-validation.json"
python -m embeddings.evaluate --run "$work/run" --data "$labelled" --split test \
  --json > "$here/evaluate-test.json"
dull="Dull and far too long." good="A wonderful film."
repeat() { local text=$1 n=$2 out=""; for ((i = 0; i < n; i++)); do out+="$text "; done; echo "${out% }"; }
python -m embeddings.predict --run "$work/run" "$dull" "$(repeat "$dull" 2)" "$(repeat "$dull" 5)" \
  "$(repeat "$dull" 20)" "$good" "$(repeat "$good" 33)" "" > "$here/predict-short-reviews.txt"
