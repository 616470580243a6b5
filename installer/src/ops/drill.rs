//! The HA drill (`bundle install --drill`): on the live cluster, stop keepalived and
//! then haproxy on the VIP holder and check the VIP moves and the API answers through
//! it; bring them back and check the VIP settles; stop one master entirely and check
//! the API still answers with the others.

use std::time::{Duration, Instant};

use crate::inventory::Cluster;
use crate::report::Event;
use crate::run::Engine;
use crate::Error;

/// How long the VIP may take to move or settle.
const MOVE_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) async fn drill(engine: &Engine<'_>, cluster: &Cluster) -> Result<(), Error> {
    let masters: Vec<&crate::inventory::Node> = cluster.masters().collect();
    if masters.len() < 2 {
        return Err(Error::Drill {
            what: "a drill needs at least two masters".into(),
        });
    }
    for m in &masters {
        if engine.host(&m.name).is_none() {
            return Err(Error::Drill {
                what: format!("master `{}` is not connected (`--only`?)", m.name),
            });
        }
    }
    let say = |m: String| engine.reporter.event(&Event::Drill { message: m });
    let endpoint = crate::render::host_port(&cluster.vip, cluster.lb_port);
    let holder = wait_single_holder(engine, cluster, None).await?;
    say(format!("the VIP {} is on `{holder}`", cluster.vip));
    api_answers(engine, cluster, &holder, &endpoint).await?;

    for unit in ["keepalived", "haproxy"] {
        let holder = wait_single_holder(engine, cluster, None).await?;
        run(engine, &holder, &format!("systemctl stop {unit}")).await?;
        say(format!("stopped {unit} on `{holder}`"));
        let new = wait_single_holder(engine, cluster, Some(&holder)).await;
        let restore = run(engine, &holder, &format!("systemctl start {unit}")).await;
        let new = new?;
        say(format!("the VIP moved to `{new}`"));
        api_answers(engine, cluster, &holder, &endpoint).await?;
        say(format!("the API answers through {endpoint}"));
        restore?;
        say(format!("started {unit} on `{holder}` again"));
        let settled = wait_single_holder(engine, cluster, None).await?;
        say(format!("the VIP settled on `{settled}`"));
    }

    // One master down entirely: the others keep the API (etcd keeps quorum).
    let down = wait_single_holder(engine, cluster, None).await?;
    let stop = "systemctl stop keepalived haproxy kubelet; if command -v crictl >/dev/null; then crictl ps -q 2>/dev/null | xargs -r crictl stop >/dev/null 2>&1; fi; true";
    run(engine, &down, stop).await?;
    say(format!(
        "stopped keepalived, haproxy, kubelet and the control plane containers on `{down}`"
    ));
    let result = async {
        let new = wait_single_holder(engine, cluster, Some(&down)).await?;
        say(format!("the VIP moved to `{new}`"));
        api_answers(engine, cluster, &down, &endpoint).await?;
        say(format!(
            "the API answers through {endpoint} with {} of {} masters",
            masters.len() - 1,
            masters.len()
        ));
        Ok::<_, Error>(())
    }
    .await;
    run(engine, &down, "systemctl start kubelet haproxy keepalived").await?;
    result?;
    let settled = wait_single_holder(engine, cluster, None).await?;
    say(format!("`{down}` is back; the VIP settled on `{settled}`"));
    Ok(())
}

async fn run(engine: &Engine<'_>, host: &str, cmd: &str) -> Result<(), Error> {
    let out = connected(engine, host).run(cmd, None).await?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::Drill {
            what: format!(
                "`{cmd}` failed on `{host}`: {}",
                crate::exec::last_lines(&out.text(), 3)
            ),
        })
    }
}

/// Waits until exactly one master holds the VIP, and (with `not`) it is not `not`.
async fn wait_single_holder(
    engine: &Engine<'_>,
    cluster: &Cluster,
    not: Option<&str>,
) -> Result<String, Error> {
    let deadline = Instant::now() + MOVE_TIMEOUT;
    loop {
        let mut holders = Vec::new();
        for m in cluster.masters() {
            let cmd = format!(
                "ip -o addr show dev {} | grep -qw '{}'",
                m.interface, cluster.vip
            );
            if connected(engine, &m.name).run(&cmd, None).await?.success() {
                holders.push(m.name.clone());
            }
        }
        if let [one] = holders.as_slice() {
            if not != Some(one.as_str()) {
                return Ok(one.clone());
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::Drill {
                what: match (holders.len(), not) {
                    (0, _) => format!("no master holds the VIP {}", cluster.vip),
                    (1, Some(n)) => format!("the VIP {} stayed on `{n}`", cluster.vip),
                    _ => format!(
                        "the VIP {} is held by several masters: {}",
                        cluster.vip,
                        holders.join(", ")
                    ),
                },
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The API answers through the VIP, asked from a master other than `not`.
async fn api_answers(
    engine: &Engine<'_>,
    cluster: &Cluster,
    not: &str,
    endpoint: &str,
) -> Result<(), Error> {
    let from = cluster
        .masters()
        .find(|m| m.name != not)
        .expect("at least two masters");
    let cmd = format!("curl -ksf -o /dev/null --max-time 5 https://{endpoint}/readyz");
    let deadline = Instant::now() + MOVE_TIMEOUT;
    loop {
        if connected(engine, &from.name)
            .run(&cmd, None)
            .await?
            .success()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Drill {
                what: format!(
                    "the API does not answer through {endpoint} (asked from `{}`)",
                    from.name
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A master the drill checked was connected before it began.
fn connected<'e>(engine: &'e Engine<'_>, host: &str) -> &'e crate::exec::SshHost {
    engine.host(host).expect("every master is connected")
}
