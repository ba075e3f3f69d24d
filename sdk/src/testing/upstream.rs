//! A fake upstream: endpoints with the attributes the gateway tracks.

use std::cell::Cell;

use crate::Candidate;
use crate::hash::fnv1a64;

/// One endpoint of a [`FakeUpstream`].
#[derive(Debug, Clone)]
pub struct FakeEndpoint {
    address: String,
    weight: u32,
    healthy: bool,
    in_flight: u32,
    latency_ewma_us: u32,
    zone: Option<String>,
    tags: Vec<String>,
    cpu: Option<f32>,
    mem: Option<f32>,
}

impl FakeEndpoint {
    /// A healthy endpoint of weight 1 at `address` (`host:port`).
    pub fn new(address: &str) -> Self {
        Self {
            address: address.to_owned(),
            weight: 1,
            healthy: true,
            in_flight: 0,
            latency_ewma_us: 0,
            zone: None,
            tags: Vec::new(),
            cpu: None,
            mem: None,
        }
    }

    /// Set the load the endpoint reports (ORCA `cpu_utilization` and
    /// `mem_utilization`, fractions), as the gateway averages it.
    pub fn load(mut self, cpu: f32, mem: f32) -> Self {
        self.cpu = Some(cpu);
        self.mem = Some(mem);
        self
    }

    /// Set the weight.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Mark it unhealthy.
    pub fn unhealthy(mut self) -> Self {
        self.healthy = false;
        self
    }

    /// Set the requests in flight.
    pub fn in_flight(mut self, n: u32) -> Self {
        self.in_flight = n;
        self
    }

    /// Set the latency average, in microseconds.
    pub fn latency_us(mut self, us: u32) -> Self {
        self.latency_ewma_us = us;
        self
    }

    /// Set the zone name.
    pub fn zone(mut self, zone: &str) -> Self {
        self.zone = Some(zone.to_owned());
        self
    }

    /// Add a tag, e.g. `canary`.
    pub fn tag(mut self, tag: &str) -> Self {
        self.tags.push(tag.to_owned());
        self
    }
}

/// An upstream as a router sees it. Endpoint ids are indexes in the order
/// endpoints were added; [`remove`](Self::remove) shifts later ids down,
/// as a config reload does. Keys are FNV-1a 64 of the address, as in the
/// gateway.
#[derive(Debug, Clone)]
pub struct FakeUpstream {
    name: String,
    endpoints: Vec<FakeEndpoint>,
    local_zone: Option<String>,
    name_lookups: Cell<u32>,
}

impl FakeUpstream {
    /// An upstream with no endpoints.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            endpoints: Vec::new(),
            local_zone: None,
            name_lookups: Cell::new(0),
        }
    }

    /// Add a healthy endpoint of weight 1.
    pub fn with_endpoint(self, address: &str) -> Self {
        self.with(FakeEndpoint::new(address))
    }

    /// Add an endpoint.
    pub fn with(mut self, endpoint: FakeEndpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Set this gateway node's zone.
    pub fn with_local_zone(mut self, zone: &str) -> Self {
        self.local_zone = Some(zone.to_owned());
        self
    }

    /// Add an endpoint to the end (it gets the next id).
    pub fn push(&mut self, endpoint: FakeEndpoint) {
        self.endpoints.push(endpoint);
    }

    /// Remove the endpoint at `address`; later endpoints' ids shift down.
    /// Returns whether it was there.
    pub fn remove(&mut self, address: &str) -> bool {
        let before = self.endpoints.len();
        self.endpoints.retain(|e| e.address != address);
        self.endpoints.len() != before
    }

    fn endpoint_mut(&mut self, id: u32) -> &mut FakeEndpoint {
        let n = self.endpoints.len();
        self.endpoints
            .get_mut(id as usize)
            .unwrap_or_else(|| panic!("no endpoint id {id} (the upstream has {n})"))
    }

    /// Mark endpoint `id` healthy or not.
    pub fn set_healthy(&mut self, id: u32, healthy: bool) {
        self.endpoint_mut(id).healthy = healthy;
    }

    /// Set endpoint `id`'s requests in flight.
    pub fn set_in_flight(&mut self, id: u32, n: u32) {
        self.endpoint_mut(id).in_flight = n;
    }

    /// Set endpoint `id`'s latency average, in microseconds.
    pub fn set_latency_us(&mut self, id: u32, us: u32) {
        self.endpoint_mut(id).latency_ewma_us = us;
    }

    /// Set endpoint `id`'s weight.
    pub fn set_weight(&mut self, id: u32, weight: u32) {
        self.endpoint_mut(id).weight = weight;
    }

    /// The id of the endpoint at `address`.
    pub fn id_of(&self, address: &str) -> Option<u32> {
        self.endpoints
            .iter()
            .position(|e| e.address == address)
            .map(|i| i as u32)
    }

    /// The candidates the gateway would pass to `choose`.
    pub fn candidates(&self) -> Vec<Candidate> {
        self.endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| Candidate {
                id: i as u32,
                key: fnv1a64(e.address.as_bytes()),
                weight: e.weight,
                healthy: e.healthy,
                in_flight: e.in_flight,
                latency_ewma_us: e.latency_ewma_us,
                zone: e.zone.as_deref().map_or(0, |z| self.zone_number(z)),
                cpu_utilization: e.cpu,
                mem_utilization: e.mem,
            })
            .collect()
    }

    /// Zone numbers: 1, 2, … in order of first appearance (local zone first).
    fn zones(&self) -> Vec<&str> {
        let mut zones: Vec<&str> = Vec::new();
        for z in self
            .local_zone
            .iter()
            .chain(self.endpoints.iter().filter_map(|e| e.zone.as_ref()))
        {
            if !zones.contains(&z.as_str()) {
                zones.push(z);
            }
        }
        zones
    }

    fn zone_number(&self, zone: &str) -> u32 {
        self.zones()
            .iter()
            .position(|z| *z == zone)
            .map_or(0, |i| i as u32 + 1)
    }

    pub(crate) fn name(&self) -> String {
        self.name_lookups.set(self.name_lookups.get() + 1);
        self.name.clone()
    }

    /// How many times a plugin asked for this upstream's name (each is a
    /// host call in the gateway).
    pub fn name_lookups(&self) -> u32 {
        self.name_lookups.get()
    }

    /// The address of endpoint `id`.
    pub fn address(&self, id: u32) -> Option<String> {
        self.endpoints.get(id as usize).map(|e| e.address.clone())
    }

    pub(crate) fn zone_name(&self, zone: u32) -> Option<String> {
        let i = usize::try_from(zone).ok()?.checked_sub(1)?;
        self.zones().get(i).map(|z| (*z).to_owned())
    }

    pub(crate) fn local_zone(&self) -> u32 {
        self.local_zone
            .as_deref()
            .map_or(0, |z| self.zone_number(z))
    }

    pub(crate) fn tags(&self, id: u32) -> Vec<String> {
        self.endpoints
            .get(id as usize)
            .map(|e| e.tags.clone())
            .unwrap_or_default()
    }

    pub(crate) fn tagged(&self, tag: &str) -> Vec<u32> {
        self.endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| e.tags.iter().any(|t| t == tag))
            .map(|(i, _)| i as u32)
            .collect()
    }
}
