// deploy/: every metric the Grafana dashboard, the Prometheus alert rules and
// the HPA's adapter rule name is served by a real relay's /metrics after some
// traffic; the Kubernetes manifests parse and point at the relay's real
// ports, probe paths, config and mounts; the Dockerfile is a sane multi-stage
// Debian 12 build whose command the binary accepts (no docker here: it is
// parsed, not built).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "relay/relay_config.hpp"
#include "relay/relay_profile.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/redis_fixture.hpp"
#include "support/relay_fixture.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

namespace fs = std::filesystem;

const fs::path deploy_dir = fs::path(TUNNEL_SOURCE_DIR) / "deploy";

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Metric names a PromQL expression reads: identifiers that are not
// functions, keywords, label names (inside {} or by/without/on/ignoring
// lists), durations, strings or Grafana variables.
std::set<std::string> promql_metric_names(std::string expr) {
    static const std::regex strings(R"("([^"\\]|\\.)*"|'([^'\\]|\\.)*')");
    static const std::regex braces(R"(\{[^}]*\})");
    static const std::regex ranges(R"(\[[^\]]*\])");
    static const std::regex grouping(
        R"(\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\))");
    static const std::regex variables(R"(\$\{?\w+\}?)");
    static const std::regex identifier(R"([A-Za-z_:][A-Za-z0-9_:]*)");
    static const std::set<std::string> keywords = {
        "and", "or",       "unless",     "bool",        "offset", "by", "without",
        "on",  "ignoring", "group_left", "group_right", "inf",    "nan"};
    expr = std::regex_replace(expr, strings, " ");
    expr = std::regex_replace(expr, braces, " ");
    expr = std::regex_replace(expr, ranges, " ");
    expr = std::regex_replace(expr, grouping, " ");
    expr = std::regex_replace(expr, variables, " ");
    std::set<std::string> out;
    for (auto it = std::sregex_iterator(expr.begin(), expr.end(), identifier);
         it != std::sregex_iterator(); ++it) {
        const auto m = *it;
        const std::string word = m.str();
        const auto after = expr.find_first_not_of(" \t\n", m.position() + m.length());
        if (after != std::string::npos && expr[after] == '(') continue;  // a function
        if (m.position() > 0 && std::isdigit(static_cast<unsigned char>(expr[m.position() - 1])))
            continue;  // 1e3, 5m
        if (keywords.count(word)) continue;
        out.insert(word);
    }
    return out;
}

TEST(DeployArtefacts, PromqlNamesAreFoundAndOnlyNames) {
    EXPECT_EQ(
        promql_metric_names(
            R"(histogram_quantile(0.95, sum by (le, tenant) (rate(a_bucket{x="y",z=~"$v"}[5m]))) / on (tenant) b > 0.5 and c_total offset 1h)"),
        (std::set<std::string>{"a_bucket", "b", "c_total"}));
    EXPECT_EQ(promql_metric_names("label_values(relay_active_tunnels, instance)"),
              (std::set<std::string>{"relay_active_tunnels", "instance"}));
}

// Every "expr" (and templating "query") string in a Grafana dashboard.
void grafana_exprs(const nlohmann::json& j, std::vector<std::string>& out) {
    if (j.is_object()) {
        for (const auto& [k, v] : j.items()) {
            if ((k == "expr" || (k == "query" && j.value("type", "") == "query")) && v.is_string())
                out.push_back(v.get<std::string>());
            else
                grafana_exprs(v, out);
        }
    } else if (j.is_array()) {
        for (const auto& v : j) grafana_exprs(v, out);
    }
}

std::set<std::string> sample_names(const std::string& exposition) {
    std::set<std::string> names;
    std::istringstream in(exposition);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line.front() == '#') continue;
        names.insert(line.substr(0, line.find_first_of("{ ")));
    }
    return names;
}

// A relay started with `o`, and alice's tunnel publishing `web` to an
// origin answering "hello\n".
struct relay_with_web {
    std::optional<relay_fixture> relay;
    std::unique_ptr<http_origin> origin;
    std::optional<relay_client> client;
};

void start_with_web(const relay_options& o, relay_with_web& out) {
    auto relay = relay_fixture::start(o);
    ASSERT_TRUE(relay) << relay.error().message << "\n" << o.extra_yaml;
    out.relay.emplace(std::move(*relay));
    auto origin = http_origin::start("hello\n");
    ASSERT_TRUE(origin) << origin.error().message;
    out.origin = std::move(*origin);
    auto token = out.relay->mint("alice", "web");
    ASSERT_TRUE(token) << token.error().message;
    auto client = out.relay->connect(*token, {{"web", out.origin->port()}});
    ASSERT_TRUE(client) << client.error().message;
    out.client.emplace(std::move(*client));
}

TEST(DeployArtefacts, EveryMetricTheDashboardsAndAlertsUseIsServed) {
    // What the artefacts read, file by file.
    std::map<std::string, std::set<std::string>> used;  // metric -> files
    auto add = [&](const std::string& expr, const std::string& file) {
        for (const auto& n : promql_metric_names(expr)) used[n].insert(file);
    };
    int dashboards = 0;
    for (const auto& e : fs::directory_iterator(deploy_dir / "grafana")) {
        if (e.path().extension() != ".json") continue;
        ++dashboards;
        auto j = nlohmann::json::parse(slurp(e.path()));
        std::vector<std::string> exprs;
        grafana_exprs(j, exprs);
        EXPECT_GE(exprs.size(), 10u) << e.path();
        for (auto& x : exprs) {
            // label_values(metric, label): only the metric is one.
            static const std::regex label_values(R"(label_values\(\s*(\w+)\s*,\s*\w+\s*\))");
            std::smatch m;
            if (std::regex_search(x, m, label_values))
                used[m[1]].insert(e.path().filename());
            else
                add(x, e.path().filename());
        }
    }
    EXPECT_EQ(dashboards, 1);
    int alerts = 0;
    for (const auto& e : fs::directory_iterator(deploy_dir / "prometheus")) {
        if (e.path().extension() != ".yml") continue;
        for (const auto& g : YAML::LoadFile(e.path().string())["groups"])
            for (const auto& r : g["rules"]) {
                ++alerts;
                ASSERT_TRUE(r["alert"] && r["expr"]) << e.path();
                add(r["expr"].as<std::string>(), e.path().filename());
            }
    }
    EXPECT_GE(alerts, 5);
    // The HPA's metric comes from the adapter's series.
    auto adapter = YAML::LoadFile((deploy_dir / "kubernetes/prometheus-adapter.yaml").string());
    auto adapter_rules = YAML::Load(adapter["data"]["config.yaml"].as<std::string>());
    for (const auto& r : adapter_rules["rules"])
        add(r["seriesQuery"].as<std::string>(), "prometheus-adapter.yaml");
    // Prometheus' own, not the relay's.
    used.erase("up");
    // The parse found what the files are about (it cannot pass by finding nothing).
    for (const char* expected :
         {"relay_requests_total", "relay_request_seconds_bucket", "relay_breaker_open",
          "relay_limits_hit_total", "relay_audit_write_failures_total", "relay_active_tunnels"})
        EXPECT_TRUE(used.count(expected)) << expected;

    // A relay with traffic: a tunnel, requests answered, a route limit hit.
    relay_options o;
    o.extra_yaml = "limits:\n  route_rps: 1\n  route_burst: 2\n";
    o.audit_log = true;
    relay_with_web web;
    ASSERT_NO_FATAL_FAILURE(start_with_web(o, web));
    auto& relay = web.relay;
    int ok = 0;
    int limited = 0;
    for (int i = 0; i < 5; ++i) {
        auto r = http_request(relay->public_port(),
                              "GET /t/alice/web/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
                              "close\r\n\r\n");
        ASSERT_TRUE(r) << r.error().message;
        ok += r->status == 200;
        limited += r->status == 429;
    }
    EXPECT_GE(ok, 1);
    EXPECT_GE(limited, 1);
    const auto served = sample_names(relay->admin_get("/metrics"));
    ASSERT_FALSE(served.empty()) << relay->log();
    for (const auto& [metric, files] : used)
        EXPECT_TRUE(served.count(metric))
            << metric << " (used in " << *files.begin() << ") is not served by /metrics";
}

// All documents of every manifest, by kind/name.
std::map<std::string, YAML::Node> load_manifests() {
    std::map<std::string, YAML::Node> docs;
    for (const auto& e : fs::directory_iterator(deploy_dir / "kubernetes")) {
        if (e.path().extension() != ".yaml") continue;
        for (const auto& d : YAML::LoadAll(slurp(e.path()))) {
            if (!d || d.IsNull()) continue;
            EXPECT_TRUE(d["apiVersion"] && d["kind"] && d["metadata"]["name"]) << e.path();
            docs[d["kind"].as<std::string>() + "/" + d["metadata"]["name"].as<std::string>()] = d;
        }
    }
    return docs;
}

YAML::Node named(const YAML::Node& list, const std::string& name) {
    for (const auto& n : list)
        if (n["name"] && n["name"].as<std::string>() == name) return n;
    return YAML::Node();
}

// The container's --set pairs for one pod: $(POD_NAME) and $(POD_IP)
// expanded as Kubernetes does from the env (downward API), which must take
// them from the pod's name and IP.
std::vector<std::string> pod_sets(const YAML::Node& container, const std::string& pod_name,
                                  const std::string& pod_ip) {
    std::map<std::string, std::string> values;
    for (const auto& e : container["env"]) {
        const auto field = e["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>("");
        if (field == "metadata.name") values[e["name"].as<std::string>()] = pod_name;
        if (field == "status.podIP") values[e["name"].as<std::string>()] = pod_ip;
    }
    EXPECT_EQ(values.size(), 2u) << "POD_NAME and POD_IP from the downward API";
    std::vector<std::string> sets;
    const auto args = container["args"].as<std::vector<std::string>>();
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
        if (args[i] != "--set") continue;
        std::string a = args[i + 1];
        for (const auto& [name, value] : values)
            for (auto at = a.find("$(" + name + ")"); at != std::string::npos;
                 at = a.find("$(" + name + ")"))
                a.replace(at, name.size() + 3, value);
        EXPECT_EQ(a.find("$("), std::string::npos) << a << ": a variable the env does not set";
        sets.push_back(a);
    }
    return sets;
}

TEST(DeployArtefacts, ManifestsMatchTheRelaysPortsProbesAndConfig) {
    auto docs = load_manifests();
    for (const char* k :
         {"ConfigMap/tunnel-relay", "Deployment/tunnel-relay", "Service/tunnel-relay",
          "Ingress/tunnel-relay", "HorizontalPodAutoscaler/tunnel-relay",
          "PodDisruptionBudget/tunnel-relay", "Deployment/tunnel-redis", "Service/tunnel-redis",
          "ConfigMap/tunnel-relay-adapter-rules"})
        ASSERT_TRUE(docs.count(k)) << k << " missing from deploy/kubernetes";

    // The config is a valid relay config over the prod profile, with the
    // pod's args (--set per pod, $(VAR) expanded as Kubernetes does).
    const auto relay_yaml = docs["ConfigMap/tunnel-relay"]["data"]["relay.yaml"].as<std::string>();
    auto pod = docs["Deployment/tunnel-relay"]["spec"]["template"];
    auto container = pod["spec"]["containers"][0];
    auto ports = container["ports"];
    const auto args = container["args"].as<std::vector<std::string>>();
    ASSERT_GE(args.size(), 4u);
    EXPECT_EQ(
        std::vector<std::string>(args.begin(), args.begin() + 4),
        (std::vector<std::string>{"--profile", "prod", "--config", "/etc/tunnel/relay.yaml"}));
    const auto sets = pod_sets(container, "tunnel-relay-5d8f7c9b4-x7k2p", "10.244.1.17");
    auto config = relay::profile_relay_config(relay::relay_profile::prod, relay_yaml,
                                              "configmap relay.yaml", sets, {});
    ASSERT_TRUE(config) << config.error().message;
    auto dir = temp_dir::create();
    ASSERT_TRUE(dir) << dir.error().message;
    ASSERT_TRUE(write_text_file(dir->file("relay.yaml"), relay_yaml));
    std::vector<std::string> check_args{"relay", "--profile", "prod", "--check-config",
                                        dir->file("relay.yaml")};
    for (const auto& set : sets) {
        check_args.push_back("--set");
        check_args.push_back(set);
    }
    auto check = run_tunnel(check_args);
    EXPECT_EQ(check.exit_code, 0) << check.describe();

    // Deployment: the container's ports are the config's, the probes the
    // admin listener's unauthenticated paths, the args name the mounted file.
    ASSERT_TRUE(named(ports, "public")) << "no port named public";
    ASSERT_TRUE(named(ports, "admin")) << "no port named admin";
    EXPECT_EQ(named(ports, "public")["containerPort"].as<int>(), config->listen.port);
    EXPECT_EQ(named(ports, "admin")["containerPort"].as<int>(), config->admin_listen.port);
    EXPECT_FALSE(config->admin_listen.is_loopback()) << "probes cannot reach a loopback admin";
    std::map<std::string, std::string> probes;
    for (const char* p : {"readinessProbe", "livenessProbe", "startupProbe"}) {
        ASSERT_TRUE(container[p]) << p;
        EXPECT_EQ(container[p]["httpGet"]["port"].as<std::string>(), "admin") << p;
        probes[p] = container[p]["httpGet"]["path"].as<std::string>();
    }
    EXPECT_EQ(probes["readinessProbe"], "/readyz");
    EXPECT_EQ(probes["livenessProbe"], "/healthz");
    // Every file the config reads is under a mount.
    std::vector<std::string> mounts;
    for (const auto& m : container["volumeMounts"]) {
        mounts.push_back(m["mountPath"].as<std::string>());
        EXPECT_TRUE(named(pod["spec"]["volumes"], m["name"].as<std::string>()))
            << "volume " << m["name"] << " not declared";
    }
    EXPECT_NE(std::find(mounts.begin(), mounts.end(), "/etc/tunnel/relay.yaml"), mounts.end());
    ASSERT_TRUE(config->cluster) << "the replicas are one relay cluster";
    for (const auto& file :
         {config->admin.token_file, config->jwt.secret_file, config->host_key_file,
          config->audit_log, config->cluster->secret_file}) {
        const bool mounted = std::any_of(mounts.begin(), mounts.end(), [&](const auto& m) {
            return file.rfind(m + "/", 0) == 0;
        });
        EXPECT_TRUE(mounted) << file << " is not under any volumeMount";
    }
    const auto labels = pod["metadata"]["labels"];
    auto selects_pods = [&](const YAML::Node& selector) {
        for (const auto& kv : selector)
            if (!labels[kv.first.as<std::string>()] ||
                labels[kv.first.as<std::string>()].as<std::string>() != kv.second.as<std::string>())
                return false;
        return selector.size() > 0;
    };
    EXPECT_TRUE(selects_pods(docs["Deployment/tunnel-relay"]["spec"]["selector"]["matchLabels"]));
    EXPECT_TRUE(selects_pods(docs["Service/tunnel-relay"]["spec"]["selector"]));
    EXPECT_TRUE(
        selects_pods(docs["PodDisruptionBudget/tunnel-relay"]["spec"]["selector"]["matchLabels"]));
    for (const auto& p : docs["Service/tunnel-relay"]["spec"]["ports"])
        EXPECT_TRUE(named(ports, p["targetPort"].as<std::string>())) << p["targetPort"];

    // Ingress: to the Service's public port, with WebSocket-long timeouts.
    auto ingress = docs["Ingress/tunnel-relay"];
    for (const char* t : {"nginx.ingress.kubernetes.io/proxy-read-timeout",
                          "nginx.ingress.kubernetes.io/proxy-send-timeout"})
        EXPECT_GE(std::stoi(ingress["metadata"]["annotations"][t].as<std::string>()), 3600) << t;
    for (const auto& rule : ingress["spec"]["rules"])
        for (const auto& path : rule["http"]["paths"]) {
            auto svc = path["backend"]["service"];
            EXPECT_EQ(svc["name"].as<std::string>(), "tunnel-relay");
            const auto port = svc["port"]["name"].as<std::string>();
            EXPECT_TRUE(named(docs["Service/tunnel-relay"]["spec"]["ports"], port)) << port;
            EXPECT_EQ(port, "public");
        }
    // HPA: on the Deployment, on the adapter's request rate.
    auto hpa = docs["HorizontalPodAutoscaler/tunnel-relay"]["spec"];
    EXPECT_EQ(hpa["scaleTargetRef"]["name"].as<std::string>(), "tunnel-relay");
    auto adapter_rules = YAML::Load(
        docs["ConfigMap/tunnel-relay-adapter-rules"]["data"]["config.yaml"].as<std::string>());
    EXPECT_EQ(hpa["metrics"][0]["pods"]["metric"]["name"].as<std::string>(),
              adapter_rules["rules"][0]["name"]["as"].as<std::string>());
    EXPECT_GE(hpa["minReplicas"].as<int>(), 2);
    EXPECT_LT(docs["PodDisruptionBudget/tunnel-relay"]["spec"]["minAvailable"].as<int>(),
              hpa["minReplicas"].as<int>());
    // Redis on its port, and the relays' cluster on it: each pod a node of
    // its own announcing its pod IP and the internal port, which is a
    // containerPort but not the Service's (only relays reach it).
    EXPECT_EQ(docs["Service/tunnel-redis"]["spec"]["ports"][0]["port"].as<int>(), 6379);
    const auto& cluster = *config->cluster;
    ASSERT_EQ(cluster.redis.endpoints.size(), 1u);
    EXPECT_EQ(cluster.redis.endpoints[0].host, "tunnel-redis");
    EXPECT_EQ(cluster.redis.endpoints[0].port,
              docs["Service/tunnel-redis"]["spec"]["ports"][0]["port"].as<int>());
    EXPECT_EQ(cluster.node, "tunnel-relay-5d8f7c9b4-x7k2p");
    ASSERT_TRUE(named(ports, "internal")) << "no port named internal";
    EXPECT_EQ(named(ports, "internal")["containerPort"].as<int>(), cluster.internal_port);
    EXPECT_EQ(cluster.internal_address(), "10.244.1.17:" + std::to_string(cluster.internal_port));
    for (const auto& p : docs["Service/tunnel-relay"]["spec"]["ports"])
        EXPECT_NE(p["targetPort"].as<std::string>(), "internal") << "the hop port is not public";
    auto other = relay::profile_relay_config(
        relay::relay_profile::prod, relay_yaml, "configmap relay.yaml",
        pod_sets(container, "tunnel-relay-5d8f7c9b4-q9w3z", "10.244.2.5"), {});
    ASSERT_TRUE(other) << other.error().message;
    EXPECT_NE(other->cluster->node, cluster.node);
    EXPECT_NE(other->cluster->internal_address(), cluster.internal_address());
    ASSERT_TRUE(config->usage);
    EXPECT_TRUE(config->usage->in_cluster && config->usage->database.empty())
        << "usage analytics are kept in the cluster's Redis";
    ASSERT_TRUE(docs.count("NetworkPolicy/tunnel-relay"));
    const auto hop_rule = docs["NetworkPolicy/tunnel-relay"]["spec"]["ingress"][1];
    EXPECT_EQ(hop_rule["ports"][0]["port"].as<std::string>(), "internal");
    EXPECT_TRUE(selects_pods(hop_rule["from"][0]["podSelector"]["matchLabels"]));

    // The probe paths answer without the admin token, which /metrics needs:
    // a relay with the ConfigMap's admin rules (a token on the admin listener).
    relay_options o;
    o.admin_token = "probe-test-token";
    auto relay = relay_fixture::start(o);
    ASSERT_TRUE(relay) << relay.error().message;
    auto plain_get = [&](const std::string& path) {
        return http_request(
            relay->admin_port(),
            "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    };
    for (const auto& [probe, path] : probes) {
        auto r = plain_get(path);
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(r->status, 200) << probe << " " << path << ": " << r->raw;
    }
    auto metrics = plain_get("/metrics");
    ASSERT_TRUE(metrics) << metrics.error().message;
    EXPECT_EQ(metrics->status, 401) << "the admin token is what guards /metrics";
}

// The ConfigMap's cluster and usage sections, with a pod's --set pairs, run
// by a real relay on a real redis-server (the addresses made local: the
// Redis Service's URL becomes the fixture's, the pod IP 127.0.0.1): it
// listens on every address, announces the advertised one with its routes,
// and answers /api/v1/usage from Redis.
TEST(DeployArtefacts, TheConfigMapsClusterRunsOnARealRedis) {
    auto docs = load_manifests();
    const auto relay_yaml =
        YAML::Load(docs["ConfigMap/tunnel-relay"]["data"]["relay.yaml"].as<std::string>());
    auto container = docs["Deployment/tunnel-relay"]["spec"]["template"]["spec"]["containers"][0];
    auto redis = redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    auto dir = temp_dir::create();
    ASSERT_TRUE(dir) << dir.error().message;
    ASSERT_TRUE(write_text_file(dir->file("cluster.secret"),
                                "0123456789abcdef0123456789abcdef-deploy", 0600));
    auto internal = unused_port();
    ASSERT_TRUE(internal);

    YAML::Node extra;
    extra["cluster"] = YAML::Clone(relay_yaml["cluster"]);
    extra["usage"] = YAML::Clone(relay_yaml["usage"]);
    extra["usage"]["flush_interval"] = "100ms";
    extra["cluster"]["redis"] = redis->url();
    extra["cluster"]["secret_file"] = dir->file("cluster.secret");
    const auto listen = extra["cluster"]["internal_listen"].as<std::string>();
    ASSERT_EQ(listen.rfind("0.0.0.0:", 0), 0u) << listen;
    extra["cluster"]["internal_listen"] = "0.0.0.0:" + std::to_string(*internal);
    for (const auto& set : pod_sets(container, "tunnel-relay-5d8f7c9b4-x7k2p", "127.0.0.1")) {
        const auto eq = set.find('=');
        ASSERT_EQ(set.rfind("cluster.", 0), 0u) << set;
        std::string value = set.substr(eq + 1);
        if (set.rfind("cluster.advertise=", 0) == 0)
            value = value.substr(0, value.rfind(':') + 1) + std::to_string(*internal);
        extra["cluster"][set.substr(8, eq - 8)] = value;
    }
    YAML::Emitter out;
    out << extra;
    relay_options o;
    o.admin_token = "deploy-cluster-admin-token";
    o.extra_yaml = std::string(out.c_str()) + "\n";
    relay_with_web web;
    ASSERT_NO_FATAL_FAILURE(start_with_web(o, web));
    auto& relay = web.relay;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (redis->cli({"HGET", "tunnel:route:alice/web", "address"}).empty() &&
           std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(redis->cli({"HGET", "tunnel:route:alice/web", "node"}),
              "tunnel-relay-5d8f7c9b4-x7k2p");
    EXPECT_EQ(redis->cli({"HGET", "tunnel:route:alice/web", "address"}),
              "127.0.0.1:" + std::to_string(*internal))
        << "the advertised address, not 0.0.0.0";
    auto r =
        http_request(relay->public_port(),
                     "GET /t/alice/web/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200);
    std::string usage;
    while (std::chrono::steady_clock::now() < deadline + std::chrono::seconds(5)) {
        usage = relay->admin_get("/api/v1/usage?tenant=alice");
        if (usage.find("\"requests\": 1") != std::string::npos) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_NE(usage.find("\"requests\": 1"), std::string::npos) << usage << relay->log();
    EXPECT_NE(redis->cli({"ZRANGE", "tunnel:usage:index:alice", "0", "-1"}).find(":web"),
              std::string::npos);
}

TEST(DeployArtefacts, DockerfileIsAMultiStageDebian12Build) {
    const auto text = slurp(deploy_dir / "Dockerfile");
    ASSERT_FALSE(text.empty());
    // Instructions, with continuation lines joined.
    std::vector<std::pair<std::string, std::string>> instructions;
    std::istringstream in(text);
    std::string pending;
    for (std::string line; std::getline(in, line);) {
        if (pending.empty() && (line.empty() || line.front() == '#')) continue;
        if (!line.empty() && line.back() == '\\') {
            pending += line.substr(0, line.size() - 1) + " ";
            continue;
        }
        pending += line;
        const auto space = pending.find(' ');
        instructions.emplace_back(pending.substr(0, space),
                                  space == std::string::npos ? "" : pending.substr(space + 1));
        pending.clear();
    }
    EXPECT_TRUE(pending.empty()) << "a continuation line runs off the end";
    static const std::set<std::string> known = {
        "FROM",   "RUN",        "COPY", "WORKDIR", "ENV",        "ARG",         "USER",
        "EXPOSE", "ENTRYPOINT", "CMD",  "LABEL",   "STOPSIGNAL", "HEALTHCHECK", "ADD"};
    std::vector<std::string> stages;
    std::vector<std::string> bases;
    std::vector<std::string> exposed;
    nlohmann::json entrypoint, cmd;
    for (const auto& [op, rest] : instructions) {
        EXPECT_TRUE(known.count(op)) << "unknown instruction " << op;
        if (op == "FROM") {
            std::smatch m;
            ASSERT_TRUE(std::regex_match(rest, m, std::regex(R"((\S+)(\s+AS\s+(\S+))?)"))) << rest;
            bases.push_back(m[1]);
            stages.push_back(m[3]);
        }
        if (op == "COPY" && rest.rfind("--from=", 0) == 0) {
            const auto from = rest.substr(7, rest.find(' ') - 7);
            EXPECT_NE(std::find(stages.begin(), stages.end() - 1, from), stages.end() - 1)
                << "COPY --from=" << from << " names no earlier stage";
        }
        if (op == "EXPOSE") {
            std::istringstream ports(rest);
            for (std::string p; ports >> p;) exposed.push_back(p);
        }
        if (op == "ENTRYPOINT") entrypoint = nlohmann::json::parse(rest);
        if (op == "CMD") cmd = nlohmann::json::parse(rest);
    }
    ASSERT_GE(stages.size(), 2u) << "not multi-stage";
    for (const auto& b : bases) EXPECT_EQ(b.rfind("debian:12", 0), 0u) << b;
    EXPECT_EQ(entrypoint, nlohmann::json::parse(R"(["/usr/bin/tunnel", "relay"])"));
    const auto profile = relay::profile_config(relay::relay_profile::prod);
    for (const auto port : {profile.listen.port, profile.admin_listen.port})
        EXPECT_NE(std::find(exposed.begin(), exposed.end(), std::to_string(port)), exposed.end())
            << port << " not exposed";
    // The image's default command is one the binary accepts.
    std::vector<std::string> args = {"relay"};
    for (const auto& a : cmd)
        args.push_back(a.get<std::string>() == "--config" ? "--check-config"
                                                          : a.get<std::string>());
    ASSERT_EQ(args.back(), "/etc/tunnel/relay.yaml");
    args.back() = (deploy_dir.parent_path() / "packaging/etc/relay.yaml").string();
    auto r = run_tunnel(args);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
}

}  // namespace
}  // namespace tunnel::test
