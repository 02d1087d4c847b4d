// Typed decode/encode of a ~1 KB nested payload against the dynamic iii::Value path.
//
//   typed:   from_json<Order>(text)  (simdjson on-demand straight into the struct)
//            to_json(order)          (RapidJSON Writer straight from the struct)
//   dynamic: Value::parse(text)      (simdjson on-demand into an iii::Value tree)
//            value.dump()            (RapidJSON Writer from the tree)
//   dynamic + mapping: the dynamic path plus moving the fields between the tree and the struct
//            (from_value / to_value), which is what a handler on iii::Value that works with a
//            struct pays
//
// Prints ns per message for each step (best of 5 rounds) and the dynamic/typed ratios. Plain
// std::chrono loop; run a release build (-O2) on an idle machine.
// Usage: bench_typed [iterations] [--json]   (--json: one JSON object, with provenance)

#include <iii/describe.hpp>
#include <iii/json.hpp>

#include "bench_support.hpp"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bench {

enum class Status { Pending, Paid, Shipped };
III_DESCRIBE_ENUM(Status, (Pending, "pending"), (Paid, "paid"), (Shipped, "shipped"));

struct Address {
    std::string street;
    std::string city;
    std::string country;
    std::optional<std::string> zip;
};
III_DESCRIBE(Address, street, city, country, zip);

struct Customer {
    std::uint64_t id = 0;
    std::string name;
    std::string email;
    Address address;
};
III_DESCRIBE(Customer, id, name, email, address);

struct Item {
    std::string sku;
    std::string title;
    std::uint32_t quantity = 0;
    double unit_price = 0;
    std::vector<std::string> tags;
};
III_DESCRIBE(Item, sku, title, quantity, unit_price, tags);

struct Order {
    std::string order_id;
    Status status = Status::Pending;
    Customer customer;
    std::vector<Item> items;
    std::map<std::string, std::string> attributes;
    std::optional<std::string> coupon;
    double total = 0;
    std::int64_t created_at = 0;
};
III_DESCRIBE(Order, order_id, status, customer, items, attributes, coupon, total, created_at);

Order sample() {
    Order o;
    o.order_id = "ord_01HZX4K8Q2M7N5P3R9T6V1W0YB";
    o.status = Status::Paid;
    o.customer = {918273645, "Ada Lovelace", "ada@example.com",
                  {"12 Analytical Engine Row", "London", "GB", std::string("NW1 6XE")}};
    const char* titles[] = {"Mechanical pencil", "Notebook, dotted", "Fountain pen ink",
                            "Brass ruler", "Desk lamp"};
    for (int i = 0; i < 5; ++i) {
        o.items.push_back({"SKU-" + std::to_string(100000 + i * 7919), titles[i],
                           static_cast<std::uint32_t>(i + 1), 3.5 * (i + 1) + 0.99,
                           {"stationery", i % 2 ? "gift" : "office", "in-stock"}});
    }
    o.attributes = {{"channel", "web"}, {"campaign", "spring-sale"}, {"warehouse", "lon-3"},
                    {"priority", "standard"}};
    o.coupon = "SPRING10";
    o.total = 123.45;
    o.created_at = 1717171717000;
    return o;
}

}  // namespace bench

namespace {

using Clock = std::chrono::steady_clock;

// Keeps results observable so the optimizer cannot drop the work.
volatile std::size_t sink = 0;

// The best of several rounds: on a shared machine the minimum is the least disturbed estimate.
template <class F>
double ns_per_op(std::size_t iterations, F&& f) {
    constexpr int rounds = 5;
    const std::size_t per_round = iterations / rounds + 1;
    for (std::size_t i = 0; i < per_round / 5 + 1; ++i) f();  // warm caches and buffers
    double best = 0;
    for (int round = 0; round < rounds; ++round) {
        const auto start = Clock::now();
        for (std::size_t i = 0; i < per_round; ++i) f();
        const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
                          static_cast<double>(per_round);
        if (round == 0 || ns < best) best = ns;
    }
    return best;
}

}  // namespace

int main(int argc, char** argv) {
    const bench::Provenance provenance;  // load before; to_value() adds the load after
    std::size_t iterations = 200000;
    bool json = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--json") {
            json = true;
        } else if (!arg.empty() && arg.find_first_not_of("0123456789") == std::string::npos) {
            iterations = std::strtoull(arg.c_str(), nullptr, 10);
        } else {
            std::fprintf(stderr, "usage: bench_typed [iterations] [--json]\n");
            return 2;
        }
    }

    const bench::Order order = bench::sample();
    const std::string text = iii::to_json(order);
    const iii::Value tree = iii::Value::parse(text);

    // Both paths must agree before their speed means anything.
    if (iii::Value::parse(iii::to_json(iii::from_json<bench::Order>(text))) != tree ||
        tree.dump() != text) {
        std::fprintf(stderr, "typed and dynamic paths disagree\n");
        return 1;
    }

    std::string out;
    const double typed_decode = ns_per_op(iterations, [&] {
        bench::Order o = iii::from_json<bench::Order>(text);
        sink = sink + o.items.size();
    });
    const double typed_encode = ns_per_op(iterations, [&] {
        iii::to_json(order, out);
        sink = sink + out.size();
    });
    const double dynamic_decode = ns_per_op(iterations, [&] {
        iii::Value v = iii::Value::parse(text);
        sink = sink + v.size();
    });
    const double dynamic_encode = ns_per_op(iterations, [&] {
        std::string s = tree.dump();
        sink = sink + s.size();
    });
    const double map_in = ns_per_op(iterations, [&] {
        bench::Order o = iii::from_value<bench::Order>(tree);
        sink = sink + o.items.size();
    });
    const double map_out = ns_per_op(iterations, [&] {
        iii::Value v = iii::to_value(order);
        sink = sink + v.size();
    });

    struct Row {
        const char* step;
        double typed, dynamic, mapped;
    };
    const Row rows[] = {
        {"decode", typed_decode, dynamic_decode, dynamic_decode + map_in},
        {"encode", typed_encode, dynamic_encode, dynamic_encode + map_out},
        {"both", typed_decode + typed_encode, dynamic_decode + dynamic_encode,
         dynamic_decode + map_in + dynamic_encode + map_out},
    };

    if (json) {
        iii::Value steps = iii::Value::object();
        for (const Row& r : rows) {
            iii::Value step = iii::Value::object();
            step.set("typed_ns", std::round(r.typed)).set("dynamic_ns", std::round(r.dynamic));
            step.set("dynamic_mapped_ns", std::round(r.mapped));
            steps.set(r.step, std::move(step));
        }
        iii::Value config = iii::Value::object();
        config.set("iterations", iterations).set("payload_bytes", text.size());
        iii::Value result = iii::Value::object();
        result.set("config", std::move(config)).set("steps_ns_per_msg", std::move(steps));
        result.set("typed_decode_mb_per_s", std::round(static_cast<double>(text.size()) / typed_decode * 1e3));
        result.set("provenance", provenance.to_value());
        std::printf("%s\n", result.dump().c_str());
        return sink == 0 ? 1 : 0;
    }
    std::printf("%s\n", bench::describe(provenance.to_value()).c_str());
    std::printf("payload: %zu bytes (nested: customer.address, %zu items with tags, map, enum, "
                "optionals), %zu iterations\n\n",
                text.size(), order.items.size(), iterations);
    std::printf("| step   | typed ns/msg | dynamic ns/msg | ratio | dynamic+mapping ns/msg | ratio |\n");
    std::printf("| ------ | ------------ | -------------- | ----- | ---------------------- | ----- |\n");
    for (const Row& r : rows)
        std::printf("| %-6s | %12.0f | %14.0f | %4.2fx | %22.0f | %4.2fx |\n", r.step, r.typed,
                    r.dynamic, r.dynamic / r.typed, r.mapped, r.mapped / r.typed);
    std::printf("\nratio = dynamic time / typed time (above 1: the typed path is faster). "
                "Typed decode is %.0f MB/s.\n",
                static_cast<double>(text.size()) / typed_decode * 1e3);
    return sink == 0 ? 1 : 0;
}
