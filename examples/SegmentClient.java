// Segment one 16-bit frame with a running `unet-edge serve` (Java 11+, no dependencies).
// javac SegmentClient.java && java SegmentClient frame.raw 512 512 [http://127.0.0.1:8765]
import java.net.URI;
import java.net.http.*;
import java.nio.file.*;

public class SegmentClient {
    public static void main(String[] args) throws Exception {
        byte[] pixels = Files.readAllBytes(Path.of(args[0])); // raw little-endian uint16, H*W*2 bytes
        String base = args.length > 3 ? args[3] : "http://127.0.0.1:8765";
        HttpRequest request = HttpRequest.newBuilder(URI.create(base + "/segment?shape=" + args[1] + "," + args[2] + "&dtype=uint16"))
                .header("Content-Type", "application/octet-stream")  // add "Authorization", "Bearer " + token off 127.0.0.1
                .POST(HttpRequest.BodyPublishers.ofByteArray(pixels)).build();
        HttpResponse<byte[]> reply = HttpClient.newHttpClient().send(request, HttpResponse.BodyHandlers.ofByteArray());
        if (reply.statusCode() != 200) throw new RuntimeException(reply.statusCode() + ": " + new String(reply.body()));
        String shape = reply.headers().firstValue("X-Shape").orElseThrow();  // "H,W": one uint8 class index per pixel
        byte[] mask = reply.body();
        long cells = 0;
        for (byte b : mask) if (b == 1) cells++;
        System.out.printf("mask %s (%s), %d pixels of class 1%n", shape, reply.headers().firstValue("X-Dtype").orElse("?"), cells);
    }
}
