# Generated from edge.control.pq_types by `python -m ext.gen_layouts --write`; do not edit.

# The typed records of the P/Q kernel: the fields of each edge.control.pq_types record, the C type
# from its default (int or float). Needs cython, _types (edge.control.pq_types) and copy_fields from
# the including module.


@cython.final
cdef class PqParams:
    """Typed copy of edge.control.pq_types.PqParams (units and defaults there)."""

    cdef public double actuation_tau_s
    cdef public double f_nominal_hz
    cdef public double fw_db_of_hz
    cdef public double fw_db_uf_hz
    cdef public int fw_enabled
    cdef public double fw_k_of
    cdef public double fw_k_uf
    cdef public double fw_olrt_s
    cdef public double fw_p_min_pu
    cdef public double p_rated_charge_w
    cdef public double p_rated_w
    cdef public double pf_charge
    cdef public int pf_charge_ext
    cdef public double pf_inj
    cdef public int pf_inj_ext
    cdef public double q_const_charge_pu
    cdef public double q_const_pu
    cdef public double q_max_abs_var
    cdef public double q_max_inj_var
    cdef public int q_mode
    cdef public double q_olrt_s
    cdef public int q_reduced_low_p
    cdef public double ramp_w_per_s
    cdef public int s_priority
    cdef public double s_rated_va
    cdef public double soc_max
    cdef public double soc_min
    cdef public double stop_ramp_w_per_s
    cdef public double vv_olrt_s
    cdef public double vv_q1_pu
    cdef public double vv_q2_pu
    cdef public double vv_q3_pu
    cdef public double vv_q4_pu
    cdef public double vv_v1_pu
    cdef public double vv_v2_pu
    cdef public double vv_v3_pu
    cdef public double vv_v4_pu
    cdef public int vv_vref_auto
    cdef public double vv_vref_pu
    cdef public double vv_vref_tau_s
    cdef public int vw_absorb
    cdef public int vw_enabled
    cdef public double vw_olrt_s
    cdef public double vw_p1_pu
    cdef public double vw_p2_charge_pu
    cdef public double vw_p2_pu
    cdef public double vw_v1_pu
    cdef public double vw_v2_pu
    cdef public double wv_p1_pu
    cdef public double wv_p2_pu
    cdef public double wv_p3_pu
    cdef public double wv_pc1_pu
    cdef public double wv_pc2_pu
    cdef public double wv_pc3_pu
    cdef public double wv_q1_pu
    cdef public double wv_q2_pu
    cdef public double wv_q3_pu
    cdef public double wv_qc1_pu
    cdef public double wv_qc2_pu
    cdef public double wv_qc3_pu

    def __init__(self):
        copy_fields(_types.PqParams(), self, _types.PqParams.__slots__)


@cython.final
cdef class PqInputs:
    """Typed copy of edge.control.pq_types.PqInputs (units and defaults there)."""

    cdef public double f_hz
    cdef public double p_dispatch_w
    cdef public double p_max_charge_w
    cdef public double p_max_discharge_w
    cdef public double p_meas_w
    cdef public double q_dispatch_var
    cdef public double soc_est
    cdef public double soc_ev
    cdef public int stop
    cdef public double t_s
    cdef public double v_pu

    def __init__(self):
        copy_fields(_types.PqInputs(), self, _types.PqInputs.__slots__)


@cython.final
cdef class PqState:
    """Typed copy of edge.control.pq_types.PqState (units and defaults there)."""

    cdef public double cap_ref_w
    cdef public double cap_tgt_w
    cdef public double dev_ref_w
    cdef public double dev_tgt_w
    cdef public double f_last_hz
    cdef public int fw_mode
    cdef public int initialized
    cdef public double p_basis_w
    cdef public double p_last_w
    cdef public double p_pre_w
    cdef public double q_ref_var
    cdef public double q_tgt_var
    cdef public double t_prev_s
    cdef public double v_last_pu
    cdef public double vref_pu

    def __init__(self):
        copy_fields(_types.PqState(), self, _types.PqState.__slots__)


@cython.final
cdef class PqOutputs:
    """Typed copy of edge.control.pq_types.PqOutputs (units and defaults there)."""

    cdef public int binding
    cdef public int binding_id
    cdef public double p_basis_w
    cdef public double p_fw_w
    cdef public double p_hi_w
    cdef public double p_lo_w
    cdef public double p_pre_w
    cdef public double p_vw_cap_w
    cdef public double p_w
    cdef public double q_cap_abs_var
    cdef public double q_cap_inj_var
    cdef public double q_fn_var
    cdef public double q_var
    cdef public double vref_pu

    def __init__(self):
        copy_fields(_types.PqOutputs(), self, _types.PqOutputs.__slots__)
