// Preloaded with `node --require` to run krsync as on a machine where some optional native
// modules are not installed: every require of a module named in KRSYNC_TEST_HIDE_MODULES
// (comma-separated package names) fails as a missing module would.
const Module = require("node:module");
const hidden = (process.env.KRSYNC_TEST_HIDE_MODULES || "").split(",").filter(Boolean);
const load = Module._load;
Module._load = function (request, ...rest) {
  if (hidden.some((name) => request === name || request.startsWith(`${name}/`))) {
    const e = new Error(`Cannot find module '${request}'`);
    e.code = "MODULE_NOT_FOUND";
    throw e;
  }
  return load.call(this, request, ...rest);
};
