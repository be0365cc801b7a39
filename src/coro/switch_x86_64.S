/*
 * The x86_64 (System V) context switch.
 *
 *   void asyncio__coro_switch_asm(void **save_sp, void *load_sp)
 *
 * Pushes the callee-saved registers on the current stack, stores the stack
 * pointer in *save_sp, loads load_sp and pops the registers saved there.
 * The caller-saved registers need no saving: the switch is an ordinary call.
 * A fresh stack is laid out by asyncio__coro_init to "return" into
 * asyncio__coro_trampoline with r12 = argument and r13 = entry function.
 */
        .text
        .globl  asyncio__coro_switch_asm
        .hidden asyncio__coro_switch_asm
        .type   asyncio__coro_switch_asm, @function
        .p2align 4
asyncio__coro_switch_asm:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .cfi_endproc
        .size   asyncio__coro_switch_asm, .-asyncio__coro_switch_asm

/*
 *   void asyncio__coro_start_asm(void **save_sp, void *stack_top,
 *                                asyncio__coro_t *(*entry)(void *), void *arg)
 *
 * Saves the current context as the switch does, moves to stack_top (16-byte
 * aligned) and calls entry(arg) there with rbp = 0, which ends frame-pointer
 * walks.  When entry returns a context, that context's saved registers are
 * popped and its switch returns: if entry never switched away, that is the
 * context saved here and the return pairs with the call of this function.
 */
        .globl  asyncio__coro_start_asm
        .hidden asyncio__coro_start_asm
        .type   asyncio__coro_start_asm, @function
        .p2align 4
asyncio__coro_start_asm:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        .cfi_undefined rip
        xorl    %ebp, %ebp
        movq    %rcx, %rdi
        call    *%rdx
        movq    (%rax), %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .cfi_endproc
        .size   asyncio__coro_start_asm, .-asyncio__coro_start_asm

        .globl  asyncio__coro_trampoline
        .hidden asyncio__coro_trampoline
        .type   asyncio__coro_trampoline, @function
        .p2align 4
asyncio__coro_trampoline:
        .cfi_startproc
        .cfi_undefined rip
        movq    %r12, %rdi
        call    *%r13
        ud2
        .cfi_endproc
        .size   asyncio__coro_trampoline, .-asyncio__coro_trampoline

        .section .note.GNU-stack,"",@progbits
