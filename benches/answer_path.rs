//! What reading a real message costs on top of plain retrieval (issue #12's
//! speed goal): `plain` embeds the question once, searches and takes the
//! configured (top, margin) confidence — the answer path before cleaning,
//! clause splitting and the verifier; `read` is the path `POST /v1/answer`
//! takes now (`service::read_question`: cleaning, the product page's extra
//! reading, each question clause of a long message, every reading's texts
//! embedded in one batched pass, evidence and the knowledge base's
//! verifier). Every iteration embeds afresh: `plain` calls the model
//! directly, and `read`'s messages cycle through more texts than the query
//! cache holds. `docs/BENCHMARKS.md` has the figures.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use xiaoer::config::Config;
use xiaoer::decision::Confidence;
use xiaoer::embed::{Embedder, Role};
use xiaoer::engine::{Engine, IndexStorage};
use xiaoer::index::Filter;
use xiaoer::kb::{KbOptions, load_dir};
use xiaoer::retrieval::Mode;
use xiaoer::service::read_question;

/// Query cache entries: fewer than the texts one cycle of a set embeds, so
/// LRU evicts each before it comes round again, yet more than one message's
/// readings (which must find their batched vectors cached).
const CACHE: usize = 8;

/// (set, product page, messages): about 15 model tokens each for the first
/// two sets (the size `embed_query/15` times alone), a long pasted message for the third.
const SETS: &[(&str, Option<&str>, &[&str])] = &[
    (
        "15_tokens",
        None,
        &[
            "可以开增值税专用发票吗",
            "退货运费是谁来出的呀",
            "保税仓发货一般要几天",
            "跨境商品需要交税吗亲",
            "花呗可以分期付款吗？",
            "新疆西藏能不能包邮呢",
            "下单后还能改地址吗？",
            "拆封了还能七天退货吗",
            "优惠券为什么用不了啊",
            "海外直邮要等多久到货",
            "怎么查询我的物流信息",
            "是正品吗有没有报关单",
        ],
    ),
    (
        "15_tokens_on_a_product_page",
        Some("p-skii-essence"),
        &[
            "这个孕妇可以用吗亲",
            "这个一次用几滴合适",
            "开封以后能放多久呀",
            "这个是日本产的吗？",
            "敏感肌能用这个吗？",
            "早上和晚上都能用吗",
            "这个需要配合乳液吗",
            "保质期到什么时候的",
            "男生可以用这个吗？",
            "这个有没有小样可试",
            "它和小灯泡哪个好用",
            "这个有酒精成分吗？",
        ],
    ),
    (
        "long_message",
        None,
        &[
            "亲 在吗 我上周五下的单 订单号123456789012345678 到现在物流都没更新 我下周三就要出国了 能不能帮忙催一下 另外如果来不及收货能退款吗",
            "你好 之前买的神仙水用着挺好的 这次想给我妈也买一瓶 她是敏感肌 不知道能不能用 还有你们现在有没有满减活动 能便宜点吗",
            "收到货发现盒子压坏了 里面的瓶子倒是没事 但是送人的话不太好看 可以换一个新的盒子吗 还是只能退货 退货的话运费谁出",
            "宝宝八个月了 一直在喝别的牌子的奶粉 想换成你们家的爱他美 请问要怎么转奶 一次换多少合适 保质期一般还剩多久",
            "我在国外读书 放假回国想给爸妈买点保健品直接寄到家里 需要提供谁的身份证 关税是按什么算的 大概几天能到",
            "昨天拍了两盒面霜 今天看到降价了 差了快一百块 能不能退差价 如果不行的话我退了重新拍可以吗",
            "您好 洗脸仪收到以后充不进电 指示灯也不亮 试了好几个插头都不行 是不是坏了 保修怎么弄 要寄回去吗",
            "双十一的时候囤了好几瓶精华 最近看到说有假货 我扫了瓶子上的码显示不出来 怎么确认是不是正品 有报关单吗",
        ],
    ),
];

fn read_path(c: &mut Criterion) {
    let config = Config { data_dir: std::env::temp_dir().join("xiaoer-bench-answer"), ..Config::default() };
    let model = Arc::new(Embedder::load(&config.model_dir, CACHE).expect("`make models` first"));
    let kb = load_dir(Path::new("knowledge_base"), &KbOptions::default()).expect("sample KB");
    let engine =
        Engine::with_kb_and_model(config, kb, IndexStorage::InMemory, Some(model.clone()), &|_, _| {}).expect("engine");
    let cfg = &engine.config.decision;
    let mut group = c.benchmark_group("answer_path");
    for &(set, page, messages) in SETS {
        let filter = Filter { product_id: page, now: None };
        let mut i = 0usize;
        let mut next = || {
            i += 1;
            messages[i % messages.len()]
        };
        group.bench_function(BenchmarkId::new("plain", set), |b| {
            b.iter(|| {
                let text = next();
                let vector = model.embed(&[text], Role::Query).expect("embed");
                let candidates =
                    (engine.retriever.search_with(text, Some(&vector[0]), &filter, 5, Mode::Hybrid, &|_| false))
                        .expect("search");
                black_box(Confidence::judge(None, None, &candidates, cfg))
            })
        });
        group.bench_function(BenchmarkId::new("read", set), |b| {
            b.iter(|| black_box(read_question(&engine, next(), page).expect("read").judged))
        });
    }
    group.finish();
}

criterion_group!(benches, read_path);
criterion_main!(benches);
