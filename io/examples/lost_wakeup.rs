//! Reproduces the lost io_uring wake-up that `tessera_io::stall` rescues.
//!
//! Four executors each sleep on a glommio timer 40,000 times while two threads burn CPU.
//! Every executor whose progress stops for 500 ms is reported as stalled. Without the
//! watchdog (`--bare`: plain glommio executors) about one run in eight stalls for good on
//! kernel 6.18; through `spawn_executor` (the default) none should.
//!
//! `cargo run --release -p tessera-io --example lost_wakeup [-- --bare]`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_io::{spawn_executor, ExecutorConfig, ShardPlacement};

const EXECUTORS: usize = 4;
const SLEEPS: u64 = 40_000;
const STALL: Duration = Duration::from_millis(500);
const GIVE_UP: Duration = Duration::from_secs(120);

fn main() {
    let bare = std::env::args().any(|a| a == "--bare");
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..2 {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
    }
    let progress: Vec<Arc<AtomicU64>> = (0..EXECUTORS).map(|_| Arc::default()).collect();
    for (i, done) in progress.iter().enumerate() {
        let done = done.clone();
        let work = move || async move {
            for k in 0..SLEEPS {
                glommio::timer::sleep(Duration::from_micros(100 + k * 37 % 400)).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        };
        if bare {
            glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                .preempt_timer(Duration::from_millis(2))
                .spawn(work)
                .expect("executor");
        } else {
            let config = ExecutorConfig {
                name: format!("lost-wakeup-{i}"),
                placement: ShardPlacement::Unbound,
                preempt_timer: Duration::from_millis(2),
            };
            spawn_executor(0, &config, work).expect("executor");
        }
    }
    let start = Instant::now();
    let mut last = [(0, Instant::now(), false); EXECUTORS];
    while progress.iter().any(|p| p.load(Ordering::Relaxed) < SLEEPS) {
        std::thread::sleep(Duration::from_millis(50));
        for (i, p) in progress.iter().enumerate() {
            let now = p.load(Ordering::Relaxed);
            let (seen, since, reported) = &mut last[i];
            if now != *seen {
                (*seen, *since, *reported) = (now, Instant::now(), false);
            } else if now < SLEEPS && !*reported && since.elapsed() > STALL {
                *reported = true;
                println!("executor {i} stalled after {now} sleeps");
            }
        }
        if start.elapsed() > GIVE_UP {
            println!("gave up after {GIVE_UP:?}: an executor never woke");
            std::process::exit(2);
        }
    }
    stop.store(true, Ordering::Relaxed);
    println!(
        "done in {:.1?}; watchdog nudges: {}",
        start.elapsed(),
        tessera_io::stall::nudges()
    );
}
