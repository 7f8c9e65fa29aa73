#!/usr/bin/env python3
"""Request bodies for the load test, one JSON object per line.

repeated: 20,000 questions drawn (Zipf, s=1.1, fixed seed) from the store's
  labelled questions and the sample KB's standard questions: a few questions
  make up most of the traffic, as in real customer service.
unique:   every line a different question (product × question pattern ×
  greeting × ending), so each one misses the query cache and is embedded.
"""
import itertools, json, random, re, sys
from pathlib import Path

root = Path(__file__).resolve().parents[2]
mode, out = sys.argv[1], sys.argv[2]

products = re.findall(r'^name = "(.+)"$', (root / "knowledge_base/products.toml").read_text(), re.M)
patterns = [
    "{p}可以七天无理由退货吗", "{p}是正品吗，有没有防伪码", "{p}发什么快递", "{p}多久能到",
    "{p}是保税仓发货还是海外直邮", "{p}要交跨境综合税吗", "{p}的保质期到什么时候", "{p}拆封了还能退吗",
    "{p}有没有赠品", "{p}能开发票吗", "{p}孕妇可以用吗", "{p}和专柜的有什么区别",
    "{p}收到有破损怎么办", "{p}什么时候补货", "{p}可以用优惠券吗", "{p}能寄到新疆吗",
    "{p}下单后能改地址吗", "{p}支持花呗分期吗", "{p}的运费险怎么理赔", "{p}买两件有优惠吗",
    "Is the {p} authentic?", "How long does the {p} take to arrive?", "Can I return the {p}?",
    "{p}過敏了可以退嗎", "{p}幾天發貨",
]
greetings = ["", "你好，", "亲，", "请问", "在吗？"]
endings = ["", "？", "呢", "😊"]

if mode == "unique":
    combos = itertools.product(patterns, products, greetings, endings)
    texts = [g + pat.format(p=p) + e for pat, p, g, e in combos if not (pat.endswith("?") and e == "？")]
    random.Random(7).shuffle(texts)
elif mode == "repeated":
    pool = [json.loads(l)["query"] for l in (root / "eval/store-queries.jsonl").read_text().splitlines() if l.strip()]
    pool += re.findall(r'^question = "(.+)"$', "".join(
        f.read_text() for f in sorted((root / "knowledge_base").rglob("*.toml"))), re.M)
    rng = random.Random(7)
    rng.shuffle(pool)
    weights = [1 / (i + 1) ** 1.1 for i in range(len(pool))]
    texts = rng.choices(pool, weights, k=20000)
else:
    sys.exit(f"usage: {sys.argv[0]} repeated|unique OUT")
Path(out).write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))
print(f"{out}: {len(texts)} requests, {len(set(texts))} distinct questions", file=sys.stderr)
