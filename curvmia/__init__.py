"""curvmia: membership-inference privacy audits with input loss curvature."""

import os

# Intel MKL (torch's CPU GEMM) rounds a float32 product differently for small row counts than
# for the same rows inside a bigger batch, and ZO's 1/h² difference turns that last bit into
# a visible change: CPU scores would depend on the forward batch size, which the scorer picks
# by timing. Strict conditional numerical reproducibility makes each output independent of
# the batch (and of the thread count) at no measurable cost. It must be set before MKL's first
# call, so it is set on import; a value the user exported wins. docs/reproducibility.md.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
