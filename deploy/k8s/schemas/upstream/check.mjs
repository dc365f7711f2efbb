// Validates custom resources against the validators that kubernetes-models
// generated from the projects' own CRDs (Strimzi 0.49.0's
// strimzi-crds-0.49.0.yaml, prometheus-operator's CRDs): the upstream check
// beside casebridge's stricter hand-written schemas in ../ (which add
// "no unknown fields"). Reads a JSON array of objects on stdin; prints one
// line per object; exits 1 if any is invalid or of a kind it has no
// validator for. deploy/k8s/check.py copies it next to the node_modules that
// `npm ci` made from package-lock.json and runs it there.

const packages = {
  "kafka.strimzi.io": "@kubernetes-models/strimzi-kafka-operator",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const objects = JSON.parse(input);

let failed = 0;
for (const obj of objects) {
  const [group, version] = String(obj.apiVersion).split("/");
  const where = `${obj.kind} ${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? "?"} (${obj.apiVersion})`;
  const pkg = packages[group];
  if (!pkg || !version) {
    console.log(`INVALID ${where}: no upstream validator for this group`);
    failed++;
    continue;
  }
  let cls;
  try {
    cls = (await import(`${pkg}/${group}/${version}/${obj.kind}`))[obj.kind];
    if (typeof cls !== "function") throw new Error("not exported");
  } catch (e) {
    console.log(`INVALID ${where}: no upstream validator for this kind (${e.code ?? e.message})`);
    failed++;
    continue;
  }
  try {
    new cls(obj).validate();
    console.log(`ok ${where}`);
  } catch (e) {
    console.log(`INVALID ${where}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
