//! The Kubernetes hand-off examples: the edge node's config passes
//! `edgeward check`, and every manifest names the objects the README says.
//! (A schema validation of the manifests is not part of the suite yet.)

use std::path::Path;

use edgeward_e2e::gateway::check;

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kubernetes")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_edge_config_is_valid() {
    let (code, out) = check(&dir().join("edgeward.yaml"));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn the_manifests_hand_the_decision_to_kubernetes() {
    let keda = read("keda-metrics-api.yaml");
    assert!(keda.contains("type: metrics-api"));
    assert!(keda.contains("valueLocation: \"services.checkout.desiredReplicas\""));
    assert!(keda.contains("/admin/scale"));
    assert!(
        read("keda-prometheus.yaml")
            .contains("edgeward_scale_desired_replicas{service=\"checkout\"}")
    );
    let hpa = read("hpa-prometheus-adapter.yaml");
    assert!(hpa.contains("kind: HorizontalPodAutoscaler") && hpa.contains("type: External"));
    assert!(read("backend.yaml").contains("clusterIP: None"));
    let edge = read("edge.yaml");
    for kind in [
        "kind: Deployment",
        "kind: Service",
        "configMap: { name: edgeward-config }",
    ] {
        assert!(edge.contains(kind), "edge.yaml lacks {kind}");
    }
    let k = read("kustomization.yaml");
    assert!(k.contains("configMapGenerator") && k.contains("- edgeward.yaml"));
    for f in [
        "edge.yaml",
        "backend.yaml",
        "keda-metrics-api.yaml",
        "keda-prometheus.yaml",
        "hpa-prometheus-adapter.yaml",
        "namespace.yaml",
    ] {
        assert!(dir().join(f).exists(), "{f}");
        // No external-metrics APIService of our own, anywhere.
        assert!(!read(f).contains("kind: APIService"), "{f}");
    }
}
