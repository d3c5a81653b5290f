//! The narrow system trait the service drives (observe + apply ops) and its real
//! implementation over rtnetlink; a recording double for tests.

use crate::cidr::Cidr;
use crate::observed::{
    Observed, ObservedAddr, ObservedBond, ObservedLink, ObservedRoute, OWNED_ALIAS, ROUTE_PROTOCOL,
};
use crate::plan::{BondOptions, Op, RouteOp};
use crate::spec::{BondMode, LacpRate, XmitHashPolicy};
use crate::waves::waves;
use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::link::{
    BondLacpRate, BondMode as NlBondMode, BondXmitHashPolicy, BridgeStpState, InfoBond, InfoBridge,
    InfoData, InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use rtnetlink::{Handle, LinkBond, LinkBridge, LinkUnspec, LinkVlan, RouteMessageBuilder};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the service needs from the kernel.
pub trait NetSystem: Send + Sync {
    /// Read links, addresses and main-table routes.
    fn observe(&self) -> Result<Observed, NetlinkError>;
    /// Perform one planned operation.
    fn apply(&self, op: &Op) -> Result<(), NetlinkError>;
    /// Perform planned operations in order, stopping at the first failure. Returns how long
    /// each took, or the position of the first failed one and its error (an implementation
    /// that sends independent ops together may have applied later ops of the same wave).
    fn apply_all(&self, ops: &[Op]) -> Result<Vec<Duration>, (usize, NetlinkError)> {
        let mut took = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let t = Instant::now();
            self.apply(op).map_err(|e| (i, e))?;
            took.push(t.elapsed());
        }
        Ok(took)
    }
}

/// A netlink failure.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot start the tokio runtime for netlink")]
    Runtime(#[source] std::io::Error),
    #[error("cannot open a netlink socket")]
    Connect(#[source] std::io::Error),
    #[error("netlink: {what} failed")]
    Request {
        what: String,
        #[source]
        source: Box<rtnetlink::Error>,
    },
    #[error("netlink: {what}: link {name:?} does not exist")]
    NoSuchLink { what: String, name: String },
    #[error("netlink: {what}: invalid route: {reason}")]
    Route { what: String, reason: String },
}

type Job = Box<dyn FnOnce(&tokio::runtime::Runtime, &Handle) + Send>;

/// rtnetlink in the network namespace of the thread that created it. Requests run on a
/// worker thread that owns a current-thread tokio runtime, so callers may block on them
/// from anywhere (plain threads, or inside another tokio runtime).
pub struct Netlink {
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
}

impl Netlink {
    /// Open a netlink connection in the current network namespace.
    pub fn new() -> Result<Netlink, NetlinkError> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("netlink".into())
            .spawn(move || {
                let setup = (|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(NetlinkError::Runtime)?;
                    let (conn, handle, _) = {
                        let _g = rt.enter();
                        rtnetlink::new_connection().map_err(NetlinkError::Connect)?
                    };
                    rt.spawn(conn);
                    Ok((rt, handle))
                })();
                let (rt, handle) = match setup {
                    Ok(v) => {
                        let _ = ready_tx.send(Ok(()));
                        v
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    job(&rt, &handle);
                }
            })
            .map_err(NetlinkError::Runtime)?;
        ready_rx
            .recv()
            .map_err(|_| NetlinkError::Runtime(std::io::Error::other("netlink worker died")))??;
        Ok(Netlink {
            jobs: Mutex::new(tx),
        })
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&tokio::runtime::Runtime, &Handle) -> Result<T, NetlinkError> + Send + 'static,
    ) -> Result<T, NetlinkError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let job: Job = Box::new(move |rt, h| {
            let _ = tx.send(f(rt, h));
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| NetlinkError::Runtime(std::io::Error::other("netlink worker is gone")))?;
        rx.recv()
            .map_err(|_| NetlinkError::Runtime(std::io::Error::other("netlink worker is gone")))?
    }
}

fn req(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let what = what.into();
    move |source| NetlinkError::Request {
        what,
        source: Box::new(source),
    }
}

fn mac_text(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn parse_link(m: &LinkMessage) -> ObservedLink {
    let mut l = ObservedLink {
        index: m.header.index,
        up: m.header.flags.contains(LinkFlags::Up),
        ..Default::default()
    };
    let mut current_mac = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Address(b) => current_mac = Some(mac_text(b)),
            LinkAttribute::PermAddress(b) => l.mac = Some(mac_text(b)),
            LinkAttribute::Mtu(v) => l.mtu = *v,
            LinkAttribute::Carrier(c) => l.carrier = *c != 0,
            LinkAttribute::Controller(i) => l.master = Some(*i),
            LinkAttribute::IfAlias(s) => l.alias = Some(s.clone()),
            LinkAttribute::Link(p) => {
                if let Some((id, _)) = l.vlan {
                    l.vlan = Some((id, *p));
                } else {
                    l.vlan = Some((0, *p));
                }
            }
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => l.kind = Some(k.to_string()),
                        LinkInfo::Data(InfoData::Bond(opts)) => {
                            let mut b = ObservedBond::default();
                            for o in opts {
                                match o {
                                    InfoBond::Mode(m) => b.mode = m.to_string(),
                                    InfoBond::MiiMon(v) => b.miimon = *v,
                                    InfoBond::Primary(v) => b.primary = Some(*v),
                                    InfoBond::ActivePort(v) => b.active = Some(*v),
                                    InfoBond::AdLacpRate(r) => b.lacp_rate = Some(r.to_string()),
                                    InfoBond::XmitHashPolicy(h) => {
                                        b.xmit_hash_policy = Some(h.to_string())
                                    }
                                    _ => {}
                                }
                            }
                            l.bond = Some(b);
                        }
                        LinkInfo::Data(InfoData::Bridge(opts)) => {
                            for o in opts {
                                if let InfoBridge::StpState(s) = o {
                                    l.stp = Some(!matches!(s, BridgeStpState::Disabled));
                                }
                            }
                        }
                        LinkInfo::Data(InfoData::Vlan(opts)) => {
                            for o in opts {
                                if let InfoVlan::Id(id) = o {
                                    let parent = l.vlan.map(|(_, p)| p).unwrap_or(0);
                                    l.vlan = Some((*id, parent));
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if l.kind.as_deref() != Some("vlan") {
        l.vlan = None;
    }
    if l.mac.is_none() {
        l.mac = current_mac;
    }
    l
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

fn parse_route(m: &RouteMessage, v4: bool) -> Option<ObservedRoute> {
    let mut dest = None;
    let mut gateway = None;
    let mut oif = None;
    let mut metric = None;
    let mut table = u32::from(m.header.table);
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dest = route_addr(d),
            RouteAttribute::Gateway(g) => gateway = route_addr(g),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    if table != 254 {
        return None;
    }
    let zero = if v4 {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    Some(ObservedRoute {
        destination: Cidr::new(dest.unwrap_or(zero), m.header.destination_prefix_length),
        gateway,
        oif,
        protocol: u8::from(m.header.protocol),
        metric,
    })
}

fn nl_bond(o: &BondOptions) -> Vec<InfoBond> {
    let mut v = vec![InfoBond::MiiMon(o.miimon)];
    if let Some(r) = o.lacp_rate {
        v.push(InfoBond::AdLacpRate(match r {
            LacpRate::Slow => BondLacpRate::Slow,
            LacpRate::Fast => BondLacpRate::Fast,
        }));
    }
    if let Some(h) = o.xmit_hash_policy {
        v.push(InfoBond::XmitHashPolicy(match h {
            XmitHashPolicy::Layer2 => BondXmitHashPolicy::Layer2,
            XmitHashPolicy::Layer23 => BondXmitHashPolicy::Layer23,
            XmitHashPolicy::Layer34 => BondXmitHashPolicy::Layer34,
        }));
    }
    v
}

fn route_message(r: &RouteOp, oif: Option<u32>) -> Result<RouteMessage, NetlinkError> {
    let what = format!("route {}", r.destination);
    fn err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> NetlinkError + '_ {
        move |e| NetlinkError::Route {
            what: what.to_string(),
            reason: e.to_string(),
        }
    }
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(r.destination.addr, r.destination.prefix)
        .map_err(err(&what))?
        .gateway(r.gateway)
        .map_err(err(&what))?
        .protocol(RouteProtocol::from(ROUTE_PROTOCOL));
    if let Some(i) = oif {
        b = b.output_interface(i);
    }
    if let Some(m) = r.metric {
        b = b.priority(m);
    }
    Ok(b.build())
}

async fn index_of(h: &Handle, name: &str, what: &str) -> Result<u32, NetlinkError> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(m.header.index),
        Ok(None) | Err(rtnetlink::Error::NetlinkError(_)) => Err(NetlinkError::NoSuchLink {
            what: what.to_string(),
            name: name.to_string(),
        }),
        Err(e) => Err(req(what)(e)),
    }
}

/// Link indices by name, kept while a batch of operations runs: one dump up front instead of
/// a lookup per name per operation; links a batch creates are added, and a delete lists
/// the names again.
type Indices = HashMap<String, u32>;

/// Every link's index by name (one dump).
async fn all_indices(h: &Handle) -> Result<Indices, NetlinkError> {
    let mut out = Indices::new();
    let mut links = h.link().get().execute();
    while let Some(m) = links.try_next().await.map_err(req("list links"))? {
        for a in &m.attributes {
            if let LinkAttribute::IfName(n) = a {
                out.insert(n.clone(), m.header.index);
            }
        }
    }
    Ok(out)
}

/// The index of `name`: from `cache`, else asked (and remembered). The cache is shared by
/// the operations of a wave, polled together on one thread; no borrow outlives an `await`.
async fn cached_index(
    h: &Handle,
    cache: &RefCell<Indices>,
    name: &str,
    what: &str,
) -> Result<u32, NetlinkError> {
    let known = cache.borrow().get(name).copied();
    if let Some(i) = known {
        return Ok(i);
    }
    let i = index_of(h, name, what).await?;
    cache.borrow_mut().insert(name.to_string(), i);
    Ok(i)
}

/// Run `ops` over one index cache, each wave of independent ones (see [`waves`]) sent
/// together: their requests are in flight at once instead of one round trip each. Returns
/// each op's duration (within a wave they overlap), or the first failed op and its error.
async fn apply_batch(h: &Handle, ops: &[Op]) -> Result<Vec<Duration>, (usize, NetlinkError)> {
    let cache = RefCell::new(all_indices(h).await.map_err(|e| (0, e))?);
    let mut took = Vec::with_capacity(ops.len());
    for wave in waves(ops) {
        let start = wave.start;
        let results = futures::future::join_all(ops[wave].iter().map(|op| async {
            let t = Instant::now();
            apply_op(h, op, &cache).await.map(|()| t.elapsed())
        }))
        .await;
        for (k, r) in results.into_iter().enumerate() {
            took.push(r.map_err(|e| (start + k, e))?);
        }
    }
    Ok(took)
}

async fn apply_op(h: &Handle, op: &Op, cache: &RefCell<Indices>) -> Result<(), NetlinkError> {
    let what = op.to_string();
    match op {
        Op::DeleteLink { name } => {
            let i = cached_index(h, cache, name, &what).await?;
            h.link().del(i).execute().await.map_err(req(&what))?;
            // Links on it (VLANs of a deleted bond) may go with it: list the names again.
            let fresh = all_indices(h).await?;
            *cache.borrow_mut() = fresh;
            Ok(())
        }
        Op::CreateBond { name, options, up } => {
            let mut b = LinkBond::new(name).mode(match options.mode {
                BondMode::ActiveBackup => NlBondMode::ActiveBackup,
                BondMode::Lacp => NlBondMode::Ieee8023Ad,
                BondMode::BalanceAlb => NlBondMode::BalanceAlb,
            });
            for o in nl_bond(options) {
                b = b.append_info_data(o);
            }
            if *up {
                b = b.up();
            }
            let msg = b.build();
            h.link().add(msg).execute().await.map_err(req(&what))?;
            mark_owned(h, cache, name, &what).await
        }
        Op::SetBondOptions { name, options } => {
            let mut b = LinkBond::new(name);
            for o in nl_bond(options) {
                b = b.append_info_data(o);
            }
            h.link()
                .change(b.build())
                .execute()
                .await
                .map_err(req(&what))
        }
        Op::SetPrimary { bond, member } => {
            let m = cached_index(h, cache, member, &what).await?;
            let msg = LinkBond::new(bond).primary(m).build();
            h.link().change(msg).execute().await.map_err(req(&what))
        }
        Op::CreateBridge { name, stp, up } => {
            let mut b = LinkBridge::new(name).stp_state(stp_state(*stp));
            if *up {
                b = b.up();
            }
            let msg = b.build();
            h.link().add(msg).execute().await.map_err(req(&what))?;
            mark_owned(h, cache, name, &what).await
        }
        Op::SetStp { name, stp } => {
            let msg = LinkBridge::new(name).stp_state(stp_state(*stp)).build();
            h.link().change(msg).execute().await.map_err(req(&what))
        }
        Op::CreateVlan {
            name,
            parent,
            id,
            up,
        } => {
            let p = cached_index(h, cache, parent, &what).await?;
            let mut b = LinkVlan::new(name, p, *id);
            if *up {
                b = b.up();
            }
            let msg = b.build();
            h.link().add(msg).execute().await.map_err(req(&what))?;
            mark_owned(h, cache, name, &what).await
        }
        Op::SetDown { name } => {
            let msg = LinkUnspec::new_with_index(cached_index(h, cache, name, &what).await?)
                .down()
                .build();
            h.link().set(msg).execute().await.map_err(req(&what))
        }
        Op::SetUp { name } => {
            let msg = LinkUnspec::new_with_index(cached_index(h, cache, name, &what).await?)
                .up()
                .build();
            h.link().set(msg).execute().await.map_err(req(&what))
        }
        Op::SetMtu { name, mtu } => {
            let msg = LinkUnspec::new_with_index(cached_index(h, cache, name, &what).await?)
                .mtu(*mtu)
                .build();
            h.link().set(msg).execute().await.map_err(req(&what))
        }
        Op::SetMaster { name, master: None } => {
            let i = cached_index(h, cache, name, &what).await?;
            let msg = LinkUnspec::new_with_index(i).nocontroller().build();
            h.link().set(msg).execute().await.map_err(req(&what))
        }
        Op::SetMaster {
            name,
            master: Some(m),
        } => {
            let i = cached_index(h, cache, name, &what).await?;
            let master = cached_index(h, cache, m, &what).await?;
            // A bond refuses a member that is up (EPERM). The planner set it down, but
            // dhcpcd may bring a link up again while it (re)starts: set it down and retry.
            let mut tries = 0;
            loop {
                let msg = LinkUnspec::new_with_index(i).controller(master).build();
                match h.link().set(msg).execute().await {
                    Err(rtnetlink::Error::NetlinkError(e))
                        if e.raw_code() == -libc::EPERM && tries < 5 =>
                    {
                        tries += 1;
                        tracing::warn!("{what}: refused while up; setting {name} down again");
                        let down = LinkUnspec::new_with_index(i).down().build();
                        h.link().set(down).execute().await.map_err(req(&what))?;
                    }
                    r => return r.map_err(req(&what)),
                }
            }
        }
        Op::AddAddress { name, cidr } => {
            let i = cached_index(h, cache, name, &what).await?;
            h.address()
                .add(i, cidr.addr, cidr.prefix)
                .execute()
                .await
                .map_err(req(&what))
        }
        Op::DelAddress { name, cidr } => {
            let i = cached_index(h, cache, name, &what).await?;
            let mut s = h.address().get().set_link_index_filter(i).execute();
            while let Some(m) = s.try_next().await.map_err(req(&what))? {
                let hit = m.header.prefix_len == cidr.prefix
                    && m.attributes.iter().any(|a| {
                        matches!(a, AddressAttribute::Address(x) | AddressAttribute::Local(x) if *x == cidr.addr)
                    });
                if hit {
                    return h.address().del(m).execute().await.map_err(req(&what));
                }
            }
            Ok(())
        }
        Op::AddRoute { route } => {
            let oif = match &route.interface {
                Some(n) => Some(cached_index(h, cache, n, &what).await?),
                None => None,
            };
            let msg = route_message(route, oif)?;
            h.route().add(msg).execute().await.map_err(req(&what))
        }
        Op::DelRoute { route } => {
            let oif = match &route.interface {
                Some(n) => index_of(h, n, &what).await.ok(),
                None => None,
            };
            let msg = route_message(route, oif)?;
            match h.route().del(msg).execute().await {
                // Already gone (with its address or link): the goal is reached.
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ESRCH => Ok(()),
                r => r.map_err(req(&what)),
            }
        }
    }
}

/// The kernel ignores `IFLA_IFALIAS` when creating a link: set it right after (and learn
/// the new link's index).
async fn mark_owned(
    h: &Handle,
    cache: &RefCell<Indices>,
    name: &str,
    what: &str,
) -> Result<(), NetlinkError> {
    let i = index_of(h, name, what).await?;
    cache.borrow_mut().insert(name.to_string(), i);
    let msg = LinkUnspec::new_with_index(i).alias(OWNED_ALIAS).build();
    h.link().set(msg).execute().await.map_err(req(what))
}

fn stp_state(on: bool) -> BridgeStpState {
    if on {
        BridgeStpState::KernelStp
    } else {
        BridgeStpState::Disabled
    }
}

impl NetSystem for Netlink {
    fn observe(&self) -> Result<Observed, NetlinkError> {
        self.run(|rt, h| rt.block_on(observe(h)))
    }

    fn apply(&self, op: &Op) -> Result<(), NetlinkError> {
        let op = op.clone();
        self.run(move |rt, h| rt.block_on(apply_op(h, &op, &RefCell::new(Indices::new()))))
    }

    fn apply_all(&self, ops: &[Op]) -> Result<Vec<Duration>, (usize, NetlinkError)> {
        let ops = ops.to_vec();
        self.run(move |rt, h| Ok(rt.block_on(apply_batch(h, &ops))))
            .map_err(|e| (0, e))?
    }
}

async fn observe(h: &Handle) -> Result<Observed, NetlinkError> {
    {
        {
            let mut obs = Observed::default();
            let mut links = h.link().get().execute();
            while let Some(m) = links.try_next().await.map_err(req("list links"))? {
                obs.links.push(parse_link(&m));
            }
            let mut addrs = h.address().get().execute();
            while let Some(m) = addrs.try_next().await.map_err(req("list addresses"))? {
                let mut addr = None;
                let mut flags = AddressFlags::from_bits_retain(u32::from(m.header.flags.bits()));
                for a in &m.attributes {
                    match a {
                        AddressAttribute::Local(x) => addr = Some(*x),
                        AddressAttribute::Address(x) if addr.is_none() => addr = Some(*x),
                        AddressAttribute::Flags(f) => flags = *f,
                        _ => {}
                    }
                }
                let permanent = flags.contains(AddressFlags::Permanent)
                    || m.header.flags.contains(AddressHeaderFlags::Permanent);
                if let (Some(a), Some(l)) = (
                    addr,
                    obs.links.iter_mut().find(|l| l.index == m.header.index),
                ) {
                    l.addresses.push(ObservedAddr {
                        cidr: Cidr::new(a, m.header.prefix_len),
                        permanent,
                    });
                }
            }
            for v4 in [true, false] {
                let msg = if v4 {
                    RouteMessageBuilder::<Ipv4Addr>::new().build()
                } else {
                    RouteMessageBuilder::<Ipv6Addr>::new().build()
                };
                let mut routes = h.route().get(msg).execute();
                while let Some(m) = routes.try_next().await.map_err(req("list routes"))? {
                    if let Some(r) = parse_route(&m, v4) {
                        obs.routes.push(r);
                    }
                }
            }
            Ok(obs)
        }
    }
}

/// A test double: a fixed observed state; records every op applied.
#[derive(Default)]
pub struct RecordingSystem {
    pub observed: Mutex<Observed>,
    pub applied: Mutex<Vec<Op>>,
    /// Ops whose display text contains this fail.
    pub fail_on: Mutex<Option<String>>,
}

impl NetSystem for RecordingSystem {
    fn observe(&self) -> Result<Observed, NetlinkError> {
        Ok(self
            .observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    fn apply(&self, op: &Op) -> Result<(), NetlinkError> {
        let fail = self
            .fail_on
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if fail.is_some_and(|f| op.to_string().contains(&f)) {
            return Err(NetlinkError::NoSuchLink {
                what: op.to_string(),
                name: "injected".into(),
            });
        }
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(op.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_vlan_link_message() {
        let msg = LinkVlan::new("bond0.20", 7, 20)
            .alias(OWNED_ALIAS)
            .mtu(1400)
            .build();
        let l = parse_link(&msg);
        assert_eq!(l.name, "bond0.20");
        assert_eq!(l.kind.as_deref(), Some("vlan"));
        assert_eq!(l.vlan, Some((20, 7)));
        assert_eq!(l.mtu, 1400);
        assert!(l.owned());
    }

    #[test]
    fn parses_a_bond_link_message() {
        let msg = LinkBond::new("bond0")
            .mode(NlBondMode::ActiveBackup)
            .miimon(100)
            .primary(3)
            .up()
            .build();
        let l = parse_link(&msg);
        assert_eq!(l.kind.as_deref(), Some("bond"));
        let b = l.bond.clone().unwrap();
        assert_eq!(
            (b.mode.as_str(), b.miimon, b.primary),
            ("active-backup", 100, Some(3))
        );
        assert!(l.up);
        assert!(!l.owned());
    }

    #[test]
    fn route_messages_carry_cairns_protocol() {
        let r = RouteOp {
            destination: "10.99.0.0/16".parse().unwrap(),
            gateway: "10.20.0.1".parse().unwrap(),
            interface: None,
            metric: Some(10),
        };
        let m = route_message(&r, Some(4)).unwrap();
        let parsed = parse_route(&m, true).unwrap();
        assert_eq!(parsed.protocol, ROUTE_PROTOCOL);
        assert_eq!(parsed.gateway, Some(r.gateway));
        assert_eq!(parsed.oif, Some(4));
        assert_eq!(parsed.metric, Some(10));
        assert_eq!(parsed.destination, r.destination);
    }
}
