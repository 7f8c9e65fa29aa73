// What the browser tests and the console benchmark share: the real binary
// on an ephemeral port over a fresh data directory, and Debian's headless Chromium.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const KEY = "e2e-agent-key";
const servers = [];

// Starts the real binary on a fresh data directory; resolves to its URL.
export async function startServer(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), "xiaoer-e2e-"));
  const proc = spawn(join(root, "target/release/xiaoer"), ["serve", "--addr", "127.0.0.1:0"], {
    cwd: root,
    env: { ...process.env, XIAOER_DATA_DIR: dir, XIAOER_SERVER__API_KEY: KEY, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  servers.push({ proc, dir });
  const at = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("server did not start: " + out)), 180_000);
    proc.stdout.on("data", (chunk) => {
      out += chunk;
      const m = out.match(/serving on (http:\/\/[\d.:]+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on("exit", (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
  return { proc, dir, url: at };
}

// Stops every server started and removes its data directory.
export function stopServers() {
  for (const { proc, dir } of servers.splice(0)) {
    proc.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
