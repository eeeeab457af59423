#!/usr/bin/env bash
# The repeated-section filter on the real stacks in ../shared/data, each with
# an injected duplicate (docs/triplet-build.md#repeated-sections has the
# numbers this prints):
#  1. bench_repeated_sections: the stack's neighbour-NCC statistics, the robust
#     z of the injected pair (a byte copy, and a copy with noise: a re-imaged
#     section) and the largest z elsewhere; one JSON line per case.
#  2. triplet-build on a temporary copy of the stack (links to every slice,
#     slice Z copied over slice Z + step): repeated_section rows in
#     rejected.csv for exactly the triplets that use the pair, none elsewhere,
#     and the rows of every triplet that does not use the copy as in the build
#     of the unchanged stack.
#  3. With BASE_BIN=DIR (the apps/ directory of a build without the filter):
#     the shards of the unchanged stacks and of the demo phantom
#     (PHANTOM=FILE.h5, `em-phantom --size 32x1536x1536 --seed 1`) are byte-identical.
# Usage: bench/repeated_sections.sh [BUILD_DIR]   (default build); exits 1 on a failed check.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
BIN=$BUILD/apps
BENCH=$BUILD/bench/bench_repeated_sections
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "repeated_sections.sh: FAIL: $*" >&2; exit 1; }

# name spec slice-to-copy step
cases=("isbi2012 data_specs/isbi2012.ini 14 1" "flyem_fibsem_medulla_train1 data_specs/flyem_fibsem_step4.ini 120 4")
for c in "${cases[@]}"; do
  read -r name spec z step <<<"$c"
  [[ -d ../shared/data/$name ]] || fail "../shared/data/$name is absent"
  "$BENCH" "$spec"
  "$BENCH" "$spec" --inject "$z"
  "$BENCH" "$spec" --inject "$z" --noise 20
  [[ $step != 1 ]] && "$BENCH" "$spec" --inject "$z" --step 1

  # The stack as given, then a copy with slice z copied over slice z + step.
  "$BIN/triplet-build" --config "$spec" --out "$TMP/$name-clean" --quiet 2>/dev/null
  mkdir "$TMP/$name"
  for f in ../shared/data/"$name"/*.png; do ln -s "$(realpath "$f")" "$TMP/$name/$(basename "$f")"; done
  dup=$(printf '%04d.png' $((z + step)))
  rm "$TMP/$name/$dup"
  cp "../shared/data/$name/$(printf '%04d.png' "$z")" "$TMP/$name/$dup"
  sed "s|^path = .*|path = $TMP/$name|" "$spec" > "$TMP/$name.ini"
  "$BIN/triplet-build" --config "$TMP/$name.ini" --out "$TMP/$name-dup" --quiet 2> "$TMP/$name.warn"
  python3 - "$TMP/$name-clean/rejected.csv" "$TMP/$name-dup/rejected.csv" "$z" "$step" "$name" <<'EOF' || fail "$name: the filter fired elsewhere or missed the duplicate"
import csv, json, sys
clean_path, dup_path, z, k, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rows = lambda p: list(csv.DictReader(open(p)))
clean, dup = rows(clean_path), rows(dup_path)
hit = {z, z + k}  # middles of the triplets that use the pair (z, z + k)
fired = [r for r in dup if r["reason"] == "repeated_section"]
wrong = [r for r in fired if int(r["z"]) not in hit]
# The tiles of the other triplets are judged as before (same reasons), except
# the triplet at z + 2k, whose outer slice z + k is now the copy.
key = lambda r: (r["source"], r["z"], r["y"], r["x"], r["reason"])
others = lambda rs: sorted(key(r) for r in rs if int(r["z"]) not in hit | {z + 2 * k})
ok = bool(fired) and not wrong and {int(r["z"]) for r in fired} == hit and others(clean) == others(dup) \
     and not any(r["reason"] == "repeated_section" for r in clean)
print(json.dumps({"stack": name, "injected_pair": [z, z + k], "repeated_section_rows": len(fired),
                  "their_middles": sorted({int(r["z"]) for r in fired}), "fired_elsewhere": len(wrong),
                  "z_in_rejected_csv": float(fired[0]["value"]) if fired else None,
                  "other_rows_unchanged": others(clean) == others(dup)}))
sys.exit(0 if ok else 1)
EOF
  grep -q "sections $z and $((z + step)) " "$TMP/$name.warn" || fail "$name: no warning naming sections $z and $((z + step))"

  if [[ -n ${BASE_BIN:-} ]]; then
    "$BASE_BIN/triplet-build" --config "$spec" --out "$TMP/$name-base" --quiet 2>/dev/null
    (cd "$TMP/$name-base" && sha256sum shard-*.h5) > "$TMP/base.sum"
    (cd "$TMP/$name-clean" && sha256sum shard-*.h5) > "$TMP/new.sum"
    cmp -s "$TMP/base.sum" "$TMP/new.sum" || fail "$name: shards differ from the build without the filter"
    echo "{\"stack\": \"$name\", \"shards_byte_identical_to_base\": true, \"shards\": $(wc -l < "$TMP/new.sum")}"
  fi
done

if [[ -n ${BASE_BIN:-} && -n ${PHANTOM:-} ]]; then
  sed "s|^path = out/demo/phantom.h5|path = $PHANTOM|" data_specs/phantom.ini > "$TMP/phantom.ini"
  for b in "$BASE_BIN" "$BIN"; do
    out="$TMP/phantom-$([[ $b == "$BIN" ]] && echo new || echo base)"
    "$b/triplet-build" --config "$TMP/phantom.ini" --out "$out" --quiet 2>/dev/null
    (cd "$out" && sha256sum shard-*.h5 rejected.csv) > "$out.sum"
  done
  cmp -s "$TMP/phantom-base.sum" "$TMP/phantom-new.sum" || fail "demo phantom: shards or rejected.csv differ from the build without the filter"
  echo "{\"stack\": \"demo phantom\", \"shards_and_rejected_byte_identical_to_base\": true, \"files\": $(wc -l < "$TMP/phantom-new.sum")}"
fi
