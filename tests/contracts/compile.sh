#!/usr/bin/env bash
# Recompile TestUSDC.sol into TestUSDC.json ({"abi", "bytecode", "solc", "evmVersion"}).
# Needs node + npm (npm registry only). solc-js is installed into a throwaway temp dir,
# so nothing lands in the repository except the artifact.
# evmVersion is pinned: recent solc defaults to an EVM newer than py-evm (eth-tester) runs.
set -euo pipefail

SOLC_VERSION="0.8.37"
EVM_VERSION="prague"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

npm install --no-save --no-audit --no-fund --ignore-scripts --silent \
    --prefix "$work" "solc@${SOLC_VERSION}" >/dev/null

SOLC_DIR="$work/node_modules/solc" SRC="$here/TestUSDC.sol" OUT="$here/TestUSDC.json" \
SOLC_VERSION="$SOLC_VERSION" EVM_VERSION="$EVM_VERSION" node - <<'JS'
const fs = require("fs");
const solc = require(process.env.SOLC_DIR);
const want = process.env.SOLC_VERSION;
if (!solc.version().startsWith(want + "+")) {
  throw new Error(`expected solc ${want}, got ${solc.version()}`);
}
const input = {
  language: "Solidity",
  sources: { "TestUSDC.sol": { content: fs.readFileSync(process.env.SRC, "utf8") } },
  settings: {
    evmVersion: process.env.EVM_VERSION,
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "TestUSDC.sol": { TestUSDC: ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);
const c = output.contracts["TestUSDC.sol"].TestUSDC;
const artifact = {
  abi: c.abi,
  bytecode: "0x" + c.evm.bytecode.object,
  solc: solc.version(),
  evmVersion: process.env.EVM_VERSION,
};
fs.writeFileSync(process.env.OUT, JSON.stringify(artifact, null, 2) + "\n");
console.log(`wrote ${process.env.OUT} (solc ${solc.version()}, evm ${process.env.EVM_VERSION})`);
JS
