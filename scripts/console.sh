#!/usr/bin/env bash
# Builds the web console (console/, Leptos compiled to WebAssembly) into a directory the server
# serves at `/` (FERRITE_CONSOLE_DIR). Installs what is missing, idempotently: the wasm32 target,
# wasm-bindgen-cli at the Cargo.lock version, and wasm-opt from npm's `binaryen` (Debian's
# wasm-opt 108 breaks rustc 1.95 modules). Tools are cached in ~/.cache/ferrite/tools.
#
# Output ($CARGO_TARGET_DIR/console-dist, outside the clone):
#   index.html                       no-cache (revalidated on every load)
#   assets/boot-<hash>.js            loads the module below (no inline script: the CSP forbids it)
#   assets/console-<hash>.js         wasm-bindgen's glue
#   assets/console_bg-<hash>.wasm    the app, size-optimised (--profile console, wasm-opt -Oz)
#   assets/style-<hash>.css          console/style.css
# Names carry a hash of their content, so the server lets browsers cache assets/ for a year; each
# file has .gz and .br copies (compressed once here, not per request).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh

tools="${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite/tools}"
out="$CARGO_TARGET_DIR/console-dist"
binaryen_version="132.0.0"
mkdir -p "$tools"

ensure_wasm_target
# brotli copies are optional locally (gzip always); CI makes them like a release would.
if [ "${CI:-}" = "true" ] && ! command -v brotli >/dev/null 2>&1; then
    ensure_apt_packages brotli
fi

# wasm-bindgen-cli must be exactly the wasm-bindgen version in Cargo.lock (the glue and the module
# format change between versions). Installed without --locked: its lockfile pins crates this
# registry may lack. Built in a throw-away target directory so the shared one is not locked.
wbg_version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
if [ -z "$wbg_version" ]; then
    echo "console.sh: no wasm-bindgen in Cargo.lock (is console/ a wasm-bindgen crate?)" >&2
    exit 1
fi
wasm_bindgen="$tools/bin/wasm-bindgen"
if [ "$("$wasm_bindgen" --version 2>/dev/null || true)" != "wasm-bindgen $wbg_version" ]; then
    echo "console.sh: installing wasm-bindgen-cli $wbg_version into $tools (about 3 minutes, once)"
    env -u CARGO_TARGET_DIR cargo install wasm-bindgen-cli --version "$wbg_version" --root "$tools" --force
fi

# wasm-opt (optional for a local run, required in CI): about 40 % off the module.
wasm_opt="$tools/binaryen-$binaryen_version/node_modules/.bin/wasm-opt"
if [ ! -x "$wasm_opt" ]; then
    if command -v npm >/dev/null 2>&1; then
        echo "console.sh: installing wasm-opt (npm binaryen@$binaryen_version) into $tools"
        mkdir -p "$tools/binaryen-$binaryen_version"
        npm install --silent --no-audit --no-fund --prefix "$tools/binaryen-$binaryen_version" \
            "binaryen@$binaryen_version" >/dev/null
    elif [ "${CI:-}" = "true" ]; then
        echo "console.sh: npm is missing (needed for wasm-opt); CI must not skip it" >&2
        exit 1
    else
        echo "console.sh: npm not found: the console is built without wasm-opt (larger module)"
        wasm_opt=""
    fi
fi

echo "console.sh: cargo build -p console --target wasm32-unknown-unknown --profile console"
cargo build -p console --target wasm32-unknown-unknown --profile console
module="$CARGO_TARGET_DIR/wasm32-unknown-unknown/console/console.wasm"

# Skip the post-processing when nothing that goes into the output changed.
stamp="$(cat "$module" console/index.html console/style.css scripts/console.sh 2>/dev/null \
    | sha256sum | cut -c1-64)-${wasm_opt:+opt}"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
    echo "console.sh: $out is up to date"
    exit 0
fi

work="$(mktemp -d "$CARGO_TARGET_DIR/console-dist.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # mktemp makes it private; the server may run as another user
mkdir -p "$work/assets" "$work/bindgen"
"$wasm_bindgen" --target web --no-typescript --out-dir "$work/bindgen" --out-name console "$module"
wasm="$work/bindgen/console_bg.wasm"
if [ -n "$wasm_opt" ]; then
    # The features rustc 1.95 enables by default for wasm32-unknown-unknown.
    # --converge: repeat until nothing shrinks (about 3 KB gzip more than one pass).
    "$wasm_opt" -Oz --converge --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-reference-types --enable-multivalue \
        -o "$work/bindgen/console_opt.wasm" "$wasm"
    wasm="$work/bindgen/console_opt.wasm"
fi

hash_of() { sha256sum "$1" | cut -c1-16; }
# Copies $1 into assets/ as <stem>-<hash>.<ext>; prints the new name.
hashed() {
    local file="$1" stem="$2" ext="$3" name
    name="$stem-$(hash_of "$file").$ext"
    cp "$file" "$work/assets/$name"
    echo "$name"
}
wasm_name="$(hashed "$wasm" console_bg wasm)"
js_name="$(hashed "$work/bindgen/console.js" console js)"
css_link=""
if [ -f console/style.css ]; then
    css_name="$(hashed console/style.css style css)"
    css_link="<link rel=\"stylesheet\" href=\"/assets/$css_name\">"
fi
printf "import init from './%s';\ninit({ module_or_path: '/assets/%s' });\n" "$js_name" "$wasm_name" \
    > "$work/bindgen/boot.js"
boot_name="$(hashed "$work/bindgen/boot.js" boot js)"
# Fetched while the glue loads, instead of after it.
preload="<link rel=\"modulepreload\" href=\"/assets/$js_name\">
    <link rel=\"preload\" href=\"/assets/$wasm_name\" as=\"fetch\" type=\"application/wasm\" crossorigin>
    <script type=\"module\" src=\"/assets/$boot_name\"></script>"

# index.html: console/index.html with its stylesheet and inline loader replaced by the hashed
# files, or a minimal page when the console has none.
if [ -f console/index.html ]; then
    { grep -v -e 'rel="stylesheet"' -e '<script' -e '</head>' console/index.html \
        | sed -n '1,/<body>/p' | sed '/<body>/d'
      [ -n "$css_link" ] && echo "    $css_link"
      echo "    $preload"
      echo "</head>"
      echo "<body>"
      sed -n '/<body>/,$p' console/index.html | sed '1d' | grep -v '<script'
    } > "$work/index.html"
else
    cat > "$work/index.html" <<EOF
<!doctype html>
<html lang="en">
<head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Ferrite console</title>
    $css_link
    $preload
</head>
<body><noscript>The Ferrite console needs JavaScript and WebAssembly.</noscript></body>
</html>
EOF
fi
if [ -d console/public ]; then
    cp -R console/public/. "$work/"
fi
rm -rf "$work/bindgen"

# Precompressed copies, served by the server when the browser accepts them.
find "$work" -type f \( -name '*.html' -o -name '*.js' -o -name '*.wasm' -o -name '*.css' \) \
    | while read -r file; do
        gzip -9 -n -k "$file"
        if command -v brotli >/dev/null 2>&1; then brotli -q 11 -k "$file"; fi
    done
echo "$stamp" > "$work/.stamp"

# Swap in the new build in one rename.
rm -rf "$out.old"
if [ -d "$out" ]; then mv "$out" "$out.old"; fi
mv "$work" "$out"
trap - EXIT
rm -rf "$out.old"

size() { stat -c %s "$1"; }
w="$out/assets/$wasm_name"
j="$out/assets/$js_name"
echo "console.sh: built $out"
printf 'console.sh: wasm %s bytes (gzip %s, brotli %s); js glue %s bytes (gzip %s)\n' \
    "$(size "$w")" "$(size "$w.gz")" "$( [ -f "$w.br" ] && size "$w.br" || echo n/a)" \
    "$(size "$j")" "$(size "$j.gz")"
