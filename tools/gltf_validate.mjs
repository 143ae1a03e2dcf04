#!/usr/bin/env node
// Validate a glTF 2.0 file (.glb or .gltf) with the Khronos glTF validator.
//
//   node tools/gltf_validate.mjs [--accept-extension-semantics] FILE
//
// Prints the validator's JSON report (unchanged) on stdout and one line per issue on stderr.
// Exit status: 0 when the report has no errors (warnings, infos and hints are allowed,
// e.g. UNSUPPORTED_EXTENSION for a KHR extension the validator does not know yet),
// 1 when it has errors, 2 when the file or the validator package cannot be used.
//
// --accept-extension-semantics: do not count one known false error. The validator
// (npm gltf-validator 2.0.0-dev.3.10, the latest release) accepts only the core attribute
// semantics and "_"-prefixed ones, so it reports MESH_PRIMITIVE_INVALID_ATTRIBUTE for the
// extension-prefixed semantics "EXTENSION:NAME" that KHR_gaussian_splatting defines
// (e.g. "KHR_gaussian_splatting:ROTATION"); see KhronosGroup/glTF-Validator issue #252
// and the pending base-spec change KhronosGroup/glTF PR #2514. With the flag exactly
// those errors are accepted: code MESH_PRIMITIVE_INVALID_ATTRIBUTE on a mesh primitive
// attribute whose name is "X:..." with X listed in the asset's extensionsUsed. They are
// still printed (as "accepted"); every other error still fails.
//
// The validator package (npm "gltf-validator") is looked up in $GLTF_VALIDATOR_DIR,
// else in tools/node/node_modules/gltf-validator beside this script. Install it with
//   npm install --prefix tools/node gltf-validator@2.0.0-dev.3.10

import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SEVERITY = ["error", "warning", "info", "hint"];

function fail(message) {
  console.error(`gltf_validate: ${message}`);
  process.exit(2);
}

function loadValidator() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const dir = path.resolve(process.env.GLTF_VALIDATOR_DIR || path.join(here, "node", "node_modules", "gltf-validator"));
  if (!existsSync(path.join(dir, "package.json"))) {
    fail(
      `the gltf-validator package is not at ${dir}; install it with ` +
        "'npm install --prefix tools/node gltf-validator@2.0.0-dev.3.10' or set GLTF_VALIDATOR_DIR",
    );
  }
  const require = createRequire(import.meta.url);
  return require(dir);
}

async function main() {
  const args = process.argv.slice(2);
  const acceptSemantics = args[0] === "--accept-extension-semantics";
  if (acceptSemantics) {
    args.shift();
  }
  if (args.length !== 1 || args[0].startsWith("-")) {
    fail("usage: node tools/gltf_validate.mjs [--accept-extension-semantics] FILE.glb|FILE.gltf");
  }
  const file = path.resolve(args[0]);
  if (!existsSync(file)) {
    fail(`${file} does not exist`);
  }
  const validator = loadValidator();
  const bytes = new Uint8Array(await readFile(file));
  let report;
  try {
    report = await validator.validateBytes(bytes, {
      uri: path.basename(file),
      maxIssues: 0, // 0: no limit
      // Buffers referenced by relative URIs in a .gltf are read from beside the file.
      externalResourceFunction: (uri) =>
        readFile(path.resolve(path.dirname(file), decodeURIComponent(uri))).then((data) => new Uint8Array(data)),
    });
  } catch (error) {
    fail(`the validator could not read ${file}: ${error}`);
  }
  console.log(JSON.stringify(report, null, 2));
  const extensionsUsed = new Set(report.info?.extensionsUsed ?? []);
  let accepted = 0;
  for (const message of report.issues.messages) {
    let severity = SEVERITY[message.severity] ?? String(message.severity);
    if (message.severity === 0 && acceptSemantics && isExtensionSemantic(message, extensionsUsed)) {
      severity = "accepted error (glTF-Validator issue #252)";
      accepted += 1;
    }
    console.error(`${severity}: ${message.code}: ${message.message} (${message.pointer ?? message.offset ?? ""})`);
  }
  const { numErrors, numWarnings, numInfos, numHints } = report.issues;
  const counted = numErrors - accepted;
  const acceptedNote = accepted ? ` (${accepted} accepted: extension-defined attribute semantics)` : "";
  console.error(`${file}: ${numErrors} errors${acceptedNote}, ${numWarnings} warnings, ${numInfos} infos, ${numHints} hints`);
  process.exit(counted > 0 ? 1 : 0);
}

// MESH_PRIMITIVE_INVALID_ATTRIBUTE on "/meshes/i/primitives/j/attributes/EXT:NAME" with EXT in extensionsUsed.
function isExtensionSemantic(message, extensionsUsed) {
  if (message.code !== "MESH_PRIMITIVE_INVALID_ATTRIBUTE" || typeof message.pointer !== "string") {
    return false;
  }
  const match = /^\/meshes\/\d+\/primitives\/\d+\/attributes\/([^/]+)$/.exec(message.pointer);
  if (!match) {
    return false;
  }
  const name = match[1].replaceAll("~1", "/").replaceAll("~0", "~"); // JSON pointer unescaping
  const colon = name.indexOf(":");
  return colon > 0 && colon < name.length - 1 && extensionsUsed.has(name.slice(0, colon));
}

main();
