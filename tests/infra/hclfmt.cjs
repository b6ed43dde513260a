// Formats HCL files with HashiCorp's own formatter (hclwrite.Format, the core of `terraform fmt`),
// compiled to WebAssembly in the npm package @cdktf/hcl-tools: no Terraform, no providers.
//   node hclfmt.cjs [--write] FILE...   prints the files that are not formatted (exit 1), or rewrites them
const fs = require("fs");
const { format } = require("@cdktf/hcl-tools");

(async () => {
  const args = process.argv.slice(2);
  const write = args[0] === "--write";
  const files = write ? args.slice(1) : args;
  let bad = 0;
  for (const f of files) {
    const text = fs.readFileSync(f, "utf8");
    const formatted = await format(text);
    if (formatted !== text) {
      if (write) fs.writeFileSync(f, formatted);
      else {
        bad += 1;
        console.log(f);
      }
    }
  }
  process.exit(bad ? 1 : 0);
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
