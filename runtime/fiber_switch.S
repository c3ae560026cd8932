/*
 * fiber_switch.S: weft__ctx_switch(void **save, void *to) and the entry
 * trampoline of a new fiber (fiber.c builds its first frame).
 *
 * Only what the calling convention says a callee must preserve is saved:
 * the call itself tells the compiler that every other register is
 * clobbered.  x86-64 (System V): rbx, rbp, r12-r15, the MXCSR control bits
 * and the x87 control word.  AArch64 (AAPCS64): x19-x29, the link register
 * x30, and the low halves d8-d15 of v8-v15.  No signal mask is saved: that
 * is what makes swapcontext a system call, and fibers share their worker's
 * mask (all signals blocked).
 *
 * A new fiber's frame holds the fiber pointer where the first callee-saved
 * register is restored from (r12 / x19) and the trampoline as the return
 * address; the trampoline passes it to weft__fiber_main, which never
 * returns.
 *
 * x86-64 leaves with pop + indirect jmp, not ret (as Boost.Context does):
 * a ret is predicted from the return stack buffer, whose top is the call
 * made on the other stack, so every switch mispredicted it; the indirect
 * jump is predicted from its own history, which a pair of fibers that
 * switch back and forth repeats.  bench/fiber's raw switch went from 10.3
 * to 11.9 ns to 6.6 to 7.0 ns on the 2-core test machine.  The return
 * address is then popped into rcx, which the calling convention lets a
 * callee clobber.
 */
#if defined(__x86_64__)
	.text
	.globl	weft__ctx_switch
	.hidden	weft__ctx_switch
	.type	weft__ctx_switch, @function
	.p2align 4
weft__ctx_switch:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movl	(%rsp), %eax
	movzwl	4(%rsp), %edx
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	/* Loading a control register costs more than the rest of the
	 * switch: load each only when the incoming context's control bits
	 * differ from the current ones (MXCSR bits 0-5 are status flags,
	 * which the ABI does not preserve). */
	xorl	(%rsp), %eax
	testl	$0xffc0, %eax
	jnz	1f
2:	cmpw	4(%rsp), %dx
	jne	3f
4:	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	popq	%rcx
	jmp	*%rcx
1:	ldmxcsr	(%rsp)
	jmp	2b
3:	fldcw	4(%rsp)
	jmp	4b
	.cfi_endproc
	.size	weft__ctx_switch, .-weft__ctx_switch

	.globl	weft__fiber_trampoline
	.hidden	weft__fiber_trampoline
	.type	weft__fiber_trampoline, @function
	.p2align 4
weft__fiber_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	movq	%r12, %rdi
	call	weft__fiber_main
	ud2
	.cfi_endproc
	.size	weft__fiber_trampoline, .-weft__fiber_trampoline

#elif defined(__aarch64__)
	.text
	.globl	weft__ctx_switch
	.hidden	weft__ctx_switch
	.type	weft__ctx_switch, %function
	.p2align 4
weft__ctx_switch:
	sub	sp, sp, #160
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mov	x2, sp
	str	x2, [x0]
	mov	sp, x1
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #160
	ret
	.size	weft__ctx_switch, .-weft__ctx_switch

	.globl	weft__fiber_trampoline
	.hidden	weft__fiber_trampoline
	.type	weft__fiber_trampoline, %function
	.p2align 4
weft__fiber_trampoline:
	mov	x0, x19
	bl	weft__fiber_main
	brk	#0
	.size	weft__fiber_trampoline, .-weft__fiber_trampoline
#else
#error "weft fibers: no context switch for this architecture (x86-64 and AArch64 only)"
#endif

	.section .note.GNU-stack, "", %progbits
