// Links the package and makes one frame through an embedded media driver.
#include <tensorpool.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

int main() {
    namespace tp = tensorpool;
    char dir[] = "/dev/shm/tp-package-XXXXXX";
    if (!mkdtemp(dir)) return 2;
    int rc = 1;
    {
        tp::Context ctx = tp::Context::embedded();
        tp::Producer p(ctx, tp::ProducerOptions(10000).standalone(dir).header_nslots(8).pool(1, 4096).prefault(false));
        tp::Claim c = p.claim(tp::TensorSpec(tp::Dtype::Float32, {4, 4}));
        for (float& v : c.as<float>()) v = 1.5f;
        rc = c.commit() == 0 ? 0 : 1;
        std::printf("tensorpool %s: committed one frame\n", tp::version().data());
    }
    std::string rm = std::string("rm -rf ") + dir;
    return std::system(rm.c_str()) == 0 ? rc : 3;
}
