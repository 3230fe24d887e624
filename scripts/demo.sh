#!/usr/bin/env bash
# make demo: generate (once) a synthetic Level-1C product with known truth and process it
# to Level-2A on a local Dask cluster. Usage: scripts/demo.sh VENV_BIN OUTPUT_FOLDER
set -euo pipefail
BIN=${1:-.venv/bin}
OUT=${2:-demo}
mkdir -p "$OUT"
L1C=$(find "$OUT/l1c" -maxdepth 1 -name '*.SAFE' -type d 2>/dev/null | head -n 1 || true)
if [ -z "$L1C" ]; then
  echo "== generating a synthetic L1C tile (1830 x 1830 px at 10 m, 25 % cloud, seed 7)"
  L1C=$("$BIN/sen2core" synth "$OUT/l1c" --size 1830 --tile 32TQM --date 2024-07-15 --seed 7 \
        --cloud-cover 25 --aot 0.2 --wv 1.8 | tail -n 1)
fi
echo "== processing $L1C"
"$BIN/sen2core" process "$L1C" --output-dir "$OUT/l2a" --workers 2 --json > "$OUT/summary.json"
DIR=$("$BIN/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['output_dir'])" "$OUT/summary.json")
echo "== Level-2A product: $DIR"
ls -1 "$DIR"
"$BIN/python" - "$OUT/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
a, p = s["atmosphere"], s["class_percentages"]
print(f"== {s['status']}: cloud {p['CLOUDY_PIXEL_PERCENTAGE']:.1f} %, AOT {a['GRANULE_MEAN_AOT']:.3f} "
      f"({a['AOT_RETRIEVAL_METHOD']}), WV {a['GRANULE_MEAN_WV']:.2f} cm; seconds per stage: {s['seconds']}")
PY
echo "== quicklook: $(ls "$DIR"/*_QL.png)"
echo "== STAC item: $DIR/$(basename "$DIR").json; collection: $OUT/l2a/collection.json"
echo "== summary: $OUT/summary.json; truth of the synthetic scene: ${L1C%.SAFE}.truth/"
