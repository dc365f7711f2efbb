#!/usr/bin/env bash
# Generates Python code for casebridge's protos (messages and gRPC stubs)
# into OUT, with grpcio-tools' bundled protoc.
#
# Usage: docs/examples/python/generate.sh OUT [PYTHON]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
OUT="${1:?usage: generate.sh OUT [PYTHON]}"
PYTHON="${2:-python3}"
mkdir -p "$OUT"
cd "$ROOT/proto"
# shellcheck disable=SC2046
"$PYTHON" -m grpc_tools.protoc -I . --python_out="$OUT" --grpc_python_out="$OUT" \
  $(find casebridge -name '*.proto' | sort)
