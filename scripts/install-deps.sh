#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine of this project's kind.
# Idempotent: a package already present is left alone, so a second run costs seconds.
set -euo pipefail

debian_packages=(
  pkg-config libpcsclite-dev pcscd vsmartcard-vpcd opensc   # the real PC/SC stack (card tests)
  poppler-utils                                              # pdftotext, pdffonts, pdfsig, pdftoppm
  faketime                                                   # scripts/test-at-night.sh
  openssl                                                    # kiosk-gateway/tests/openssl_pki.rs: a PKI not ours
  systemd                                                    # systemd-analyze: tests/tests/deploy.rs checks deploy/systemd
  postgresql                                                 # initdb, pg_ctl: kiosk-gateway/tests/postgres_tls.rs starts its own cluster
  softhsm2                                                   # PKCS#11 signing keys (kiosk-keys, issuer, audit tests)
  nodejs                                                     # npm installs buf (proto/tests/buf.rs)
)
python_packages=(grpcio-tools==1.85.1 grpcio-reflection==1.85.1 pyHanko==0.38.0 cryptography)
# buf lints the contract and compares it with the last released one (proto/tests/buf.rs); the
# npm package ships the binary.
buf_version=1.75.0

missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! python3 -c "import grpc_tools, grpc_reflection, pyhanko, cryptography" >/dev/null 2>&1; then
  echo "install-deps: installing Python packages: ${python_packages[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${python_packages[@]}"
fi

if [ "$(buf --version 2>/dev/null || true)" != "$buf_version" ]; then
  # Debian's nodejs leaves npm to its own package; NodeSource's bundles it.
  if ! command -v npm >/dev/null; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm
  fi
  echo "install-deps: installing buf $buf_version (npm @bufbuild/buf)"
  npm install --global --silent "@bufbuild/buf@$buf_version"
fi
