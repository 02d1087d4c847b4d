#pragma once
// A throw-away PKI for the wss:// tests, made with the `openssl` command at test time (no key
// is ever committed): a CA, a server certificate for localhost and 127.0.0.1, a server
// certificate for other names (host name mismatch), and a client certificate (mutual TLS).

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

namespace test_support {

struct TestPki {
    std::filesystem::path dir;
    std::string ca, ca_key;            // the test CA
    std::string server_cert, server_key;  // SAN DNS:localhost, IP:127.0.0.1
    std::string wrong_cert, wrong_key;    // SAN DNS:elsewhere.test, IP:10.9.8.7
    std::string client_cert, client_key;  // signed by the CA, clientAuth
    std::string ca_dir;                   // the CA in OpenSSL's hashed-directory format

    /// The process's PKI, made on first use; its directory is removed at exit.
    static const TestPki& get() {
        static const TestPki pki;
        return pki;
    }

    std::string read(const std::string& file) const {
        std::ifstream in(file);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    TestPki(const TestPki&) = delete;
    TestPki& operator=(const TestPki&) = delete;
    ~TestPki() {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }

private:
    TestPki() {
        std::string pattern = (std::filesystem::temp_directory_path() / "iii-pki-XXXXXX").string();
        if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        dir = pattern;
        auto at = [&](const char* name) { return (dir / name).string(); };
        ca = at("ca.pem");
        ca_key = at("ca.key");
        server_cert = at("server.pem");
        server_key = at("server.key");
        wrong_cert = at("wrong.pem");
        wrong_key = at("wrong.key");
        client_cert = at("client.pem");
        client_key = at("client.key");
        ca_dir = at("ca.d");
        const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        run("openssl req -x509 " + key + " -keyout " + ca_key + " -out " + ca +
            " -days 2 -subj '/CN=iii test CA' -addext basicConstraints=critical,CA:TRUE"
            " -addext keyUsage=critical,keyCertSign,cRLSign");
        leaf("server", server_cert, server_key,
             "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
        leaf("wrong", wrong_cert, wrong_key,
             "subjectAltName=DNS:elsewhere.test,IP:10.9.8.7\nextendedKeyUsage=serverAuth\n");
        leaf("client", client_cert, client_key, "extendedKeyUsage=clientAuth\n");
        std::filesystem::create_directory(ca_dir);
        run("cp " + ca + " " + ca_dir + "/ca.pem && openssl rehash " + ca_dir);
    }

    void leaf(const std::string& name, const std::string& cert, const std::string& key_file,
              const std::string& extensions) {
        const auto csr = (dir / (name + ".csr")).string();
        const auto ext = (dir / (name + ".ext")).string();
        std::ofstream(ext) << extensions;
        run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
            key_file + " -out " + csr + " -subj '/CN=iii test " + name + "'");
        run("openssl x509 -req -in " + csr + " -CA " + ca + " -CAkey " + ca_key +
            " -CAcreateserial -days 2 -out " + cert + " -extfile " + ext);
    }

    static void run(const std::string& command) {
        const std::string quiet = command + " >/dev/null 2>&1";
        if (std::system(quiet.c_str()) != 0) throw std::runtime_error("failed: " + command);
    }
};

}  // namespace test_support
