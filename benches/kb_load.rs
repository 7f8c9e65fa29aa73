//! Loading one TOML knowledge file of 1k / 4k / 8k generated entries (each a
//! question, three similar phrasings, a zh + en answer and a category), so a
//! return of quadratic line numbering shows up at once.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use xiaoer::kb::{KbOptions, load_path};

const SIZES: [(&str, usize); 3] = [("1k", 1_000), ("4k", 4_000), ("8k", 8_000)];

const PRODUCTS: &[&str] = &[
    "SK-II神仙水",
    "兰蔻小黑瓶",
    "雅诗兰黛小棕瓶",
    "安热沙金瓶防晒乳",
    "科颜氏高保湿面霜",
    "a2白金版奶粉3段",
    "花王纸尿裤L码",
    "戴森吹风机HD15",
    "Swisse钙片",
    "爱他美卓萃奶粉",
];

/// (category, question, three similar phrasings, zh answer, en answer);
/// `{p}` is replaced by a product name.
type Topic = (&'static str, &'static str, [&'static str; 3], &'static str, &'static str);

const TOPICS: &[Topic] = &[
    (
        "退换货",
        "{p}拆封了还能七天无理由退货吗？",
        ["{p}打开过可以退吗", "{p}用了一次能不能退货", "{p}拆了包装还支持七天无理由吗"],
        "{p}未拆封且不影响二次销售时支持七天无理由退货；拆封后如无质量问题不支持退货，请在订单页提交申请。",
        "Unopened {p} can be returned within 7 days; opened items can only be returned for quality issues.",
    ),
    (
        "物流配送",
        "{p}从保税仓发货要几天能到？",
        ["{p}多久能收到", "{p}发货后几天到", "买了{p}什么时候到货"],
        "{p}从保税仓发货，清关后一般3–5个工作日送达，偏远地区约7天，可在订单详情查看物流。",
        "{p} ships from a bonded warehouse and usually arrives 3–5 working days after customs clearance.",
    ),
    (
        "正品保障",
        "{p}是正品吗？有没有防伪码？",
        ["{p}是不是真的", "{p}怎么验真伪", "{p}会不会是假货"],
        "本店{p}均为品牌官方渠道直采，附海关报关单和检验检疫证明，假一赔十，可扫描包装上的防伪码查询。",
        "Every {p} is sourced from the brand's official channel with customs documents; fakes are refunded tenfold.",
    ),
    (
        "税费",
        "买{p}要交跨境综合税吗？",
        ["{p}需要交税吗", "{p}的税费怎么算", "{p}含税吗"],
        "{p}按跨境电商综合税率9.1%计税，税费已包含在结算价格中，年度限额内无需另行缴纳。",
        "{p} carries the 9.1% cross-border tax, already included in the price within the annual quota.",
    ),
    (
        "售后服务",
        "收到的{p}包装破损怎么办？",
        ["{p}到货时盒子压坏了", "{p}外包装坏了能换吗", "{p}漏液了怎么处理"],
        "请在签收后48小时内拍摄{p}破损处及快递面单照片联系客服，核实后为您补发或退款，运费由我们承担。",
        "Send photos of the damaged {p} and the waybill within 48 hours of delivery; we will resend or refund.",
    ),
];

/// A knowledge file of `n` distinct entries.
fn generate(n: usize) -> String {
    let mut out = String::with_capacity(n * 700);
    for i in 0..n {
        let (category, question, similar, zh, en) = TOPICS[i % TOPICS.len()];
        let product = format!("{}{}号", PRODUCTS[(i / TOPICS.len()) % PRODUCTS.len()], i);
        let fill = |t: &str| t.replace("{p}", &product);
        let similar: Vec<String> = similar.iter().map(|s| format!("{:?}", fill(s))).collect();
        write!(
            out,
            "[[faq]]\nid = \"gen-{i:05}\"\nquestion = {:?}\nsimilar = [{}]\ncategory = \"{category}\"\n\
             answer.zh = {:?}\nanswer.en = {:?}\n\n",
            fill(question),
            similar.join(", "),
            fill(zh),
            fill(en),
        )
        .unwrap();
    }
    out
}

fn load(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("kb_load_toml");
    group.sample_size(10);
    for (name, n) in SIZES {
        let path = dir.path().join(format!("faq-{name}.toml"));
        std::fs::write(&path, generate(n)).expect("write knowledge file");
        let opts = KbOptions::default();
        let kb = load_path(&path, &opts).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kb.faqs.len(), n);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| black_box(load_path(&path, &opts).expect("load")))
        });
    }
    group.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
